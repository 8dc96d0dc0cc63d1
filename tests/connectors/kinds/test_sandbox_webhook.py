import pytest

from connectors.protocol import CallbackRejected, PermanentError, RetryableError
from tests.connectors.kinds.conftest import hmac_request


def test_answers(connector):
    hook = connector("sandbox_webhook")
    assert hook.answer_read(b'{"id":"w-1","ok":true}').provider_message_id == "w-1"
    with pytest.raises(RetryableError):
        hook.answer_read(b'{"ok":false,"error":"busy"}')
    with pytest.raises(PermanentError):
        hook.answer_read(b"OK")


def test_status_updates(connector):
    (receipt,) = (
        connector("sandbox_webhook").parse_callback(hmac_request(b'{"id":"w-1","status":"replied"}')).receipts
    )
    assert (receipt.provider_message_id, receipt.status) == ("w-1", "replied")
    with pytest.raises(CallbackRejected):
        connector("sandbox_webhook").parse_callback(hmac_request(b'{"id":"w-1","status":"exploded"}'))
