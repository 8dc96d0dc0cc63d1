import hashlib
import hmac
import secrets
import time

import pytest

from connectors.protocol import InboundRequest
from connectors.registry import kind_get

SECRET = "callback-secret-for-tests"


@pytest.fixture
def connector():
    def make(key: str, **settings):
        kind = kind_get(key)
        return kind(
            account_id=1, settings=kind.settings_model.model_validate({"callback_secret": SECRET, **settings})
        )

    return make


def sandbox_headers(body: bytes, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    """The sandbox providers' callback signature, made here with the standard library, not with the
    code under test: HMAC-SHA256 over ``<timestamp>.<nonce>.<body>``."""
    stamp, nonce = str(timestamp if timestamp is not None else int(time.time())), secrets.token_hex(16)
    signed = f"{stamp}.{nonce}.".encode() + body
    return {
        "x-sandbox-timestamp": stamp,
        "x-sandbox-nonce": nonce,
        "x-sandbox-signature": hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest(),
    }


def hmac_request(body: bytes, secret: str = SECRET) -> InboundRequest:
    return InboundRequest(
        body=body, headers=sandbox_headers(body, secret), query={}, content_type="application/json"
    )
