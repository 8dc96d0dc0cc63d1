import datetime as dt
import hashlib
import hmac
import secrets
import time
from urllib.parse import parse_qs, urlencode

import pytest
import time_machine

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
    """Signed as SendCloud documents it, with a fresh token (its nonce) and the time in milliseconds."""
    timestamp, token = str(int(time.time() * 1000)), secrets.token_hex(25)
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


def test_a_captured_signature_signs_no_other_event_and_works_once_within_five_minutes(connector):
    """Review finding 6's proof: SendCloud's signature leaves the event out, so a captured
    (timestamp, token, signature) was good for any event for ever; now it is good once, for 5 minutes."""
    email = connector("sandbox_email")
    with time_machine.travel(dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.UTC), tick=False) as clock:
        captured = sendcloud({"event": "deliver", "emailId": "e-1"})
        assert email.parse_callback(captured).receipts[0].status == "delivered"
        fields = {key: values[0] for key, values in parse_qs(captured.body.decode()).items()}
        forged = InboundRequest(
            body=urlencode({**fields, "event": "unsubscribe", "emailId": "e-victim"}).encode(),
            headers={},
            query={},
            content_type="application/x-www-form-urlencoded",
        )
        with pytest.raises(CallbackRejected, match="nonce already used"):
            email.parse_callback(forged)
        late = sendcloud({"event": "deliver", "emailId": "e-2"})
        clock.shift(dt.timedelta(minutes=5, seconds=1))
        with pytest.raises(CallbackRejected, match="more than 5 minutes old"):
            email.parse_callback(late)
