"""The one way the product calls a URL that a person typed (a webhook node, a webhook account).

A URL reaches only public addresses: its host is resolved and every address it resolves to is
checked (loopback, private, link-local with the cloud metadata services, carrier-grade NAT,
multicast, unspecified and reserved ranges are refused, IPv4 written as one number or in hex
included, and IPv4 inside IPv6), then the connection goes to the address that was checked, so a
second lookup cannot answer differently. HTTPS still checks the certificate against the host's
name. Redirects are not followed: a 3xx is the answer. Ports are 80 and 443 unless an admin allows
more (``OUTBOUND_ALLOWED_PORTS``); an admin can let the product reach addresses of the company's
own network by listing them (``OUTBOUND_ALLOWED_NETWORKS``).
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext as _

DEFAULT_PORTS = {"http": 80, "https": 443}
# Names that never mean a public server.
_LOCAL_NAMES = ("localhost",)
_LOCAL_SUFFIXES = (".localhost", ".internal", ".local", ".localdomain", ".home.arpa")
_CARRIER_NAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class OutboundError(Exception):
    """The call did not get an answer; the message says why, for the people who set the URL."""


class DestinationRefused(OutboundError):
    """The URL points somewhere the product does not call: nothing was sent."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    location: str = ""

    @property
    def redirect(self) -> bool:
        return 300 <= self.status < 400


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(item, strict=False) for item in settings.OUTBOUND_ALLOWED_NETWORKS]


def _port_allowed(port: int) -> bool:
    if port in DEFAULT_PORTS.values():
        return True
    for item in settings.OUTBOUND_ALLOWED_PORTS:
        low, _dash, high = str(item).partition("-")
        if int(low) <= port <= int(high or low):
            return True
    return False


def _unwrapped(address: Address) -> Address:
    """The IPv4 address an IPv6 one carries (mapped, NAT64, 6to4), which is what it reaches."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour:
            return address.sixtofour
    return address


def _address_kind(address: Address) -> str:
    """What kind of address the product does not call this is ('' if it may call it)."""
    reached = _unwrapped(address)
    if any(reached in network for network in _allowed_networks()):
        return ""
    if reached.is_unspecified:
        return _("an unspecified address")
    if reached.is_loopback:
        return _("a loopback address")
    if reached.is_link_local:
        return _("a link-local address (where cloud metadata services answer)")
    if reached in _CARRIER_NAT:
        return _("a carrier-grade NAT address (where some cloud metadata services answer)")
    if reached.is_multicast:
        return _("a multicast address")
    if reached.is_private:
        return _("a private network address")
    if reached.is_reserved or not reached.is_global:
        return _("a reserved address")
    return ""


def address_problem(address: Address) -> str:
    """Why the product does not call this address ('' if it may)."""
    kind = _address_kind(address)
    if not kind:
        return ""
    return _("%(address)s is %(kind)s: the product only calls public addresses.") % {
        "address": address,
        "kind": kind,
    }


def _literal_address(host: str) -> Address | None:
    """The address a host written as an address means, however spelt (``0x7f000001``, ``2130706433``,
    ``127.1``: the resolver reads them all as 127.0.0.1)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def url_problem(url: str) -> str:
    """What is wrong with calling this URL, seen without a lookup: the scheme, the port, a local
    name, an address that is not public. '' if nothing (the addresses it resolves to are checked at
    each call)."""
    try:
        parts = urlsplit(str(url))
        port = parts.port
    except ValueError as error:
        return _("The URL cannot be read: %(error)s") % {"error": error}
    if parts.scheme not in DEFAULT_PORTS:
        return _("The URL must start with http:// or https://.")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        return _("The URL has no host.")
    if parts.username or parts.password:
        return _("The URL may not hold a user name or password.")
    port = port or DEFAULT_PORTS[parts.scheme]
    if not _port_allowed(port):
        return _("Port %(port)s is not allowed: only 80 and 443, unless an admin allows more.") % {
            "port": port
        }
    literal = _literal_address(host)
    if literal is not None:
        return address_problem(literal)
    if host in _LOCAL_NAMES or host.endswith(_LOCAL_SUFFIXES):
        return _("%(host)s is a local name: the product only calls public addresses.") % {"host": host}
    return ""


def _resolved(host: str, port: int) -> str:
    """The address to connect to: every address the name resolves to must be allowed."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise OutboundError(
            _("%(host)s cannot be resolved: %(error)s") % {"host": host, "error": error}
        ) from None
    addresses = list(dict.fromkeys(info[4][0] for info in found))
    if not addresses:
        raise OutboundError(_("%(host)s resolves to no address.") % {"host": host})
    for address in addresses:
        kind = _address_kind(ipaddress.ip_address(address.split("%")[0]))
        if kind:
            raise DestinationRefused(
                _("%(host)s resolves to %(address)s, %(kind)s: the product only calls public addresses.")
                % {"host": host, "address": address, "kind": kind}
            )
    return addresses[0]


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to the address that was checked; the Host header keeps the name."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """Connects to the address that was checked; TLS sends the name (SNI) and checks the
    certificate against it."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, *, body: bytes, headers: dict[str, str], timeout: float, max_answer: int) -> Answer:
    """POSTs ``body`` and returns the answer, whatever its status (a 3xx is not followed). Raises
    ``DestinationRefused`` before sending anything to a place the product does not call, and
    ``OutboundError`` when no answer came within ``timeout`` seconds (in all: connecting, sending
    and reading)."""
    problem = url_problem(url)
    if problem:
        raise DestinationRefused(problem)
    parts = urlsplit(str(url))
    host = parts.hostname.rstrip(".").lower()
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    address = _resolved(host, port)
    connection_class = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
    connection = connection_class(host, port, address=address, timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    expired = threading.Event()

    def cut() -> None:  # a server that answers a byte at a time is cut off at the timeout too
        expired.set()
        if connection.sock is not None:
            with contextlib.suppress(OSError):
                connection.sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(timeout, cut)
    timer.daemon = True
    timer.start()
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        raw = response.read(max_answer)
        return Answer(status=response.status, body=raw, location=response.getheader("Location", "") or "")
    except (OSError, http.client.HTTPException) as error:
        if expired.is_set():
            raise OutboundError(_("no answer within %(seconds)s s") % {"seconds": timeout}) from None
        raise OutboundError(str(error) or type(error).__name__) from None
    finally:
        timer.cancel()
        connection.close()
