import hashlib
import hmac

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


def hmac_request(body: bytes, header: str = "x-sandbox-signature", secret: str = SECRET) -> InboundRequest:
    """Signed here with the standard library, not with the code under test."""
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return InboundRequest(body=body, headers={header: signature}, query={}, content_type="application/json")
