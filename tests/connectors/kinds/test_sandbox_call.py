import json

import pytest

from connectors.protocol import CallbackRejected, PauseAccountError, PermanentError, RetryableError
from tests.connectors.kinds.conftest import hmac_request

ANSWERS = [
    (b'{"code":0,"message":"success","data":{"callId":"c-1"}}', "c-1"),
    (b'{"code":1002,"message":"concurrency","data":null}', RetryableError),
    (b'{"code":1001,"message":"balance","data":null}', PauseAccountError),
    (b'{"code":1003,"message":"number invalid","data":null}', PermanentError),
]


@pytest.mark.parametrize(("answer", "expected"), ANSWERS)
def test_answers(connector, answer, expected):
    call = connector("sandbox_call")
    if isinstance(expected, str):
        assert call.answer_read(answer).provider_message_id == expected
    else:
        with pytest.raises(expected):
            call.answer_read(answer)


def test_call_results_carry_duration_and_intent(connector):
    body = json.dumps({"callId": "c-1", "callee": "13800138000", "status": "busy", "duration": 0}).encode()
    (receipt,) = connector("sandbox_call").parse_callback(hmac_request(body)).receipts
    assert (receipt.status, receipt.detail, receipt.data) == ("failed", "busy", {"duration": 0, "intent": ""})
    with pytest.raises(CallbackRejected):
        connector("sandbox_call").parse_callback(hmac_request(b'{"status": "answered"}'))
