"""What every callback that carries a timestamp and a nonce is checked for once its signature
matches: that it is fresh and seen once; and how XML bodies are read.

A signature proves that the provider sent the callback once. A copy taken from an access log or the
wire would pass the signature check again, so a callback is refused when its timestamp is more than
``MAX_AGE_SECONDS`` old or further ahead than ``FUTURE_SKEW_SECONDS`` (clocks differ a little), and
when its nonce was already used on the account while its timestamp is still accepted. Nonces are
kept in the cache (Redis when ``REDIS_URL`` is set, shared by every web process) for exactly that
long: an older copy is refused by its timestamp.

XML is read by defusedxml with no document type allowed: no provider sends one, and an entity bomb
or an external entity is refused before anything is expanded or fetched.
"""

from __future__ import annotations

import hashlib
import time
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree
from defusedxml import DefusedXmlException
from django.core.cache import cache

from connectors.protocol import CallbackRejected

MAX_AGE_SECONDS = 300
FUTURE_SKEW_SECONDS = 60
MAX_NONCE_LENGTH = 128


def callback_fresh(*, account_id: int, timestamp: float, nonce: str) -> None:
    """Refuses (``CallbackRejected``) a stale or future timestamp and a nonce already used on the
    account; records the nonce otherwise. Call it after the signature over both has matched, so
    that nobody can use up a provider's nonces."""
    now = time.time()
    if timestamp < now - MAX_AGE_SECONDS:
        raise CallbackRejected(f"timestamp is more than {MAX_AGE_SECONDS // 60} minutes old")
    if timestamp > now + FUTURE_SKEW_SECONDS:
        raise CallbackRejected("timestamp is in the future")
    if not nonce or len(nonce) > MAX_NONCE_LENGTH:
        raise CallbackRejected(f"nonce is missing or longer than {MAX_NONCE_LENGTH} characters")
    key = f"callback-nonce:{account_id}:{hashlib.sha256(nonce.encode()).hexdigest()}"
    # ``add`` writes only a key that is not there (SET NX in Redis): of two copies at once, one wins.
    if not cache.add(key, 1, timeout=MAX_AGE_SECONDS + FUTURE_SKEW_SECONDS):
        raise CallbackRejected("nonce already used: a replayed callback")


def timestamp_read(value: str, *, milliseconds: bool = False) -> float:
    """A callback's Unix timestamp as seconds, or ``CallbackRejected`` naming the problem."""
    if not value.isdigit() or len(value) > 16:
        raise CallbackRejected("timestamp is missing or not a number")
    return int(value) / 1000 if milliseconds else float(value)


def xml_read(body: bytes | str) -> Element:
    """The root element, or ``CallbackRejected`` for a body that is not plain XML."""
    try:
        return defusedxml.ElementTree.fromstring(body, forbid_dtd=True)
    except DefusedXmlException as error:
        raise CallbackRejected(
            f"XML with a document type or entities is refused ({type(error).__name__})"
        ) from None
    except ParseError as error:
        raise CallbackRejected(f"not XML: {error}") from None
