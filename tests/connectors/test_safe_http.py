"""The safe client for URLs people type (security review, finding 4): the addresses of the review's
proof refused however they are spelt, a name that resolves to one of them refused at the call, a
redirect taken as the answer (never followed), other ports refused unless allowed, and a webhook
account's raw answers shown to admins only."""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from connectors import safe_http
from connectors.accounts import account_create, kind_instance
from connectors.models import Message, MessageLog
from connectors.protocol import OutgoingMessage, PauseAccountError, PermanentError
from journeys.validation import graph_validate
from tests.journeys.conftest import edge, node


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.100.100.200/latest/meta-data/",  # Alibaba Cloud's metadata service
        "http://0x7f000001/hook",
        "http://2130706433/hook",
        "http://127.1/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:a9fe:a9fe]/hook",  # 169.254.169.254 inside IPv6
        "http://10.0.0.8/hook",
        "http://172.16.3.4/hook",
        "http://192.168.1.1/hook",
        "http://[fc00::1]/hook",
        "http://[fe80::1]/hook",
        "http://224.0.0.1/hook",
        "http://0.0.0.0/hook",
        "http://localhost/hook",
        "http://metadata.google.internal/computeMetadata/v1/",
        "https://crm.example.com:8443/hook",
    ],
)
def test_the_webhook_node_refuses_urls_that_reach_inside(url):
    graph = {
        "nodes": [
            node("t1", "event_trigger", event="lead_created"),
            node("w1", "call_webhook", url=url, ends=["success", "failed"]),
        ],
        "edges": [edge("t1", "w1")],
    }
    problems = [p for p in graph_validate(graph) if p["node"] == "w1"]
    assert [p["field"] for p in problems] == ["config.url"]
    assert safe_http.url_problem(url)


def test_public_urls_pass():
    assert safe_http.url_problem("https://crm.example.com/hooks/leads") == ""
    assert safe_http.url_problem("http://203.0.114.9/in") == ""


def _no_inside_name(reason: str) -> None:
    """The machine's own host name stands for a name that resolves inside; CI's machines have one,
    and nothing may be skipped there."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must run every test.")
    pytest.skip(reason)


def test_a_name_that_resolves_to_an_inside_address_is_refused_before_anything_is_sent():
    name = socket.gethostname()  # in /etc/hosts: 127.0.0.1 here, a private address in most containers
    address = socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)[0][4][0]
    if ipaddress.ip_address(address).is_global:
        _no_inside_name(f"{name} resolves to a public address here")
    with pytest.raises(safe_http.DestinationRefused) as refused:
        safe_http.post(f"http://{name}/hook", body=b"{}", headers={}, timeout=2, max_answer=100)
    assert f"{name} resolves to {address}" in str(refused.value)


def test_allowing_a_network_is_an_admin_setting(settings):
    assert "loopback" in safe_http.url_problem("http://127.0.0.1/hook")
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert safe_http.url_problem("http://127.0.0.1/hook") == ""
    assert "Port 8080 is not allowed" in safe_http.url_problem("http://127.0.0.1:8080/hook")
    settings.OUTBOUND_ALLOWED_PORTS = ["8000-8999"]
    assert safe_http.url_problem("http://127.0.0.1:8080/hook") == ""


class Redirecting(BaseHTTPRequestHandler):
    """A receiver that answers every POST with a redirect to the metadata path of the same server."""

    requests: list[tuple[str, str]] = []

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).requests.append(("POST", self.path))
        self.send_response(302)
        self.send_header("Location", "/latest/meta-data/iam/credentials")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        type(self).requests.append(("GET", self.path))
        body = b'{"id": "leaked", "AccessKeyId": "AKIA-SECRET"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def redirecting(settings):
    # The fake listens on 127.0.0.1: allowed here only, never by default.
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.OUTBOUND_ALLOWED_PORTS = ["1024-65535"]
    Redirecting.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def webhook_account(url: str):
    return account_create(
        kind="webhook",
        name="ERP",
        values={"url": url, "signing_secret": "webhook-signing-secret-0123"},
        rate_per_second=100_000,
    )


def outgoing() -> OutgoingMessage:
    return OutgoingMessage(
        id=1, idempotency_key="k-1", recipient="42", content={"payload": {}}, customer_id=42
    )


def test_a_redirect_is_the_answer_and_is_not_followed(db, redirecting):
    with pytest.raises(PermanentError) as failed:
        kind_instance(webhook_account(redirecting)).send(outgoing())
    assert str(failed.value).startswith("HTTP 302: redirects are not followed")
    assert Redirecting.requests == [("POST", "/hook")]


def test_a_webhook_account_whose_host_resolves_inside_pauses(db, settings):
    account = webhook_account("https://crm.example.com/hook")
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    instance = kind_instance(account)
    instance.settings.url = f"http://{socket.gethostname()}/hook"  # its DNS now answers otherwise
    address = socket.getaddrinfo(socket.gethostname(), 80, type=socket.SOCK_STREAM)[0][4][0]
    if ipaddress.ip_address(address).is_global:
        _no_inside_name("the host name resolves to a public address here")
    with pytest.raises(PauseAccountError) as paused:
        instance.send(outgoing())
    assert "the product only calls public addresses" in str(paused.value)


@time_machine.travel("2026-12-07 10:00 +0800", tick=False)
def test_a_webhook_accounts_raw_answers_are_shown_to_admins_only(client, user_in_role, make_customer):
    account = webhook_account("https://crm.example.com/hook")
    customer = make_customer()
    message = Message.objects.create(
        account=account,
        channel="webhook",
        customer=customer,
        recipient=str(customer.pk),
        idempotency_key="raw-1",
        status=Message.Status.FAILED,
        provider_answer='{"AccessKeyId": "AKIA-SECRET"}',
        due_at=timezone.now(),
    )
    MessageLog.objects.create(
        message=message, at=timezone.now(), step="send", status="failed", raw="AKIA-SECRET in the log"
    )
    for role, shown in (("Analyst", False), ("Marketer", False), ("Admin", True)):
        client.force_login(user_in_role(role, username=role.lower()))
        page = client.get(reverse("message", args=[message.pk])).content.decode()
        api = client.get(reverse("api_message", args=[message.pk])).json()
        assert ("AKIA-SECRET" in page) is shown, role
        assert ("AKIA-SECRET" in str(api)) is shown, role
