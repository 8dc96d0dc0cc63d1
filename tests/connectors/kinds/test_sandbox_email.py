import hashlib
import hmac
from urllib.parse import urlencode

import pytest

from connectors.protocol import (
    CallbackRejected,
    DeferError,
    InboundRequest,
    PauseAccountError,
    RetryableError,
)
from tests.connectors.kinds.conftest import SECRET

ANSWERS = [
    (b'{"result":true,"statusCode":200,"message":"\xe8\xaf\xb7\xe6\xb1\x82\xe6\x88\x90\xe5\x8a\x9f",'
     b'"info":{"emailIdList":["1479...@sendcloud.org"]}}', "1479...@sendcloud.org"),
    (b'{"result":false,"statusCode":40005,"message":"auth failed"}', PauseAccountError),
    (b'{"result":false,"statusCode":40300,"message":"quota"}', DeferError),
    (b'{"result":false,"statusCode":50000,"message":"busy"}', RetryableError),
]  # fmt: skip


@pytest.mark.parametrize(("answer", "expected"), ANSWERS)
def test_answers(connector, answer, expected):
    email = connector("sandbox_email")
    if isinstance(expected, str):
        assert email.answer_read(answer).provider_message_id == expected
    else:
        with pytest.raises(expected):
            email.answer_read(answer)


def sendcloud(fields: dict, key: str = SECRET) -> InboundRequest:
    timestamp, token = "1732413600000", "t" * 50
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    body = urlencode({**fields, "timestamp": timestamp, "token": token, "signature": signature}).encode()
    return InboundRequest(body=body, headers={}, query={}, content_type="application/x-www-form-urlencoded")


@pytest.mark.parametrize(
    ("event", "status"),
    [("deliver", "delivered"), ("open", "opened"), ("click", "clicked"), ("unsubscribe", "unsubscribed"),
     ("soft_bounce", "failed"), ("invalid", "failed")],
)  # fmt: skip
def test_webhook_events(connector, event, status):
    answer = connector("sandbox_email").parse_callback(
        sendcloud({"event": event, "emailId": "e-1", "url": "https://x"})
    )
    assert [(r.provider_message_id, r.status) for r in answer.receipts] == [("e-1", status)]
    assert answer.body == b"success"


def test_a_wrong_signature_is_refused(connector):
    with pytest.raises(CallbackRejected):
        connector("sandbox_email").parse_callback(
            sendcloud({"event": "deliver", "emailId": "e"}, key="other-key")
        )
