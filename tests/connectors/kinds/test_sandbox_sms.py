import datetime as dt
import json

import pytest
import time_machine

from connectors.protocol import (
    CallbackRejected,
    DeferError,
    InboundRequest,
    PauseAccountError,
    PermanentError,
    RetryableError,
)
from tests.connectors.kinds.conftest import hmac_request, sandbox_headers

ANSWERS = [
    (
        b'{"Code":"OK","Message":"OK","BizId":"900619746936498440^0","RequestId":"F655A8D5"}',
        "900619746936498440^0",
    ),
    (
        b'{"Code":"isv.BUSINESS_LIMIT_CONTROL","Message":"\xe4\xb8\x9a\xe5\x8a\xa1\xe9\x99\x90\xe6\xb5\x81"}',
        RetryableError,
    ),
    (b'{"Code":"Throttling.User","Message":"Request was denied due to user flow control."}', RetryableError),
    (b'{"Code":"isv.DAY_LIMIT_CONTROL","Message":"x"}', DeferError),
    (b'{"Code":"isv.AMOUNT_NOT_ENOUGH","Message":"x"}', PauseAccountError),
    (b'{"Code":"InvalidAccessKeyId.NotFound","Message":"x"}', PauseAccountError),
    (b'{"Code":"isv.MOBILE_NUMBER_ILLEGAL","Message":"x"}', PermanentError),
    (b"<html>502 Bad Gateway</html>", PermanentError),
]


@pytest.mark.parametrize(("answer", "expected"), ANSWERS)
def test_answers(connector, answer, expected):
    sms = connector("sandbox_sms")
    if isinstance(expected, str):
        assert sms.answer_read(answer).provider_message_id == expected
    else:
        with pytest.raises(expected) as raised:
            sms.answer_read(answer)
        assert raised.value.raw == answer.decode()


def test_delivery_reports_as_aliyun_pushes_them(connector):
    sent = {"send_time": "2026-11-24 10:00:00", "report_time": "2026-11-24 10:00:05", "sms_size": "1"}
    reports = [
        {**sent, "phone_number": "13800138000", "success": True, "err_code": "DELIVERED",
         "err_msg": "用户接收成功", "biz_id": "12345^0", "out_id": "journey:7:n3:1"},
        {**sent, "phone_number": "13900139000", "success": False, "err_code": "MK:0001",
         "err_msg": "号码停机", "biz_id": "12346^0", "out_id": ""},
    ]  # fmt: skip
    body = json.dumps(reports, ensure_ascii=False).encode()
    answer = connector("sandbox_sms").parse_callback(hmac_request(body))
    assert [(r.provider_message_id, r.status, r.idempotency_key) for r in answer.receipts] == [
        ("12345^0", "delivered", "journey:7:n3:1"),
        ("12346^0", "failed", ""),
    ]
    assert answer.receipts[1].detail == "MK:0001 号码停机"
    assert json.loads(answer.body) == {"code": 0, "msg": "接收成功"}
    with pytest.raises(CallbackRejected):
        connector("sandbox_sms").parse_callback(hmac_request(body, secret="someone-else"))


def test_the_sandbox_signature_covers_the_body_and_works_once_within_five_minutes(connector):
    """Every sandbox provider signs ``<timestamp>.<nonce>.<body>``: a copied signature signs no other
    body, works once, and not after 5 minutes."""
    sms = connector("sandbox_sms")
    body = b'[{"biz_id": "1^0", "success": true}]'
    with time_machine.travel(dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.UTC), tick=False) as clock:
        headers = sandbox_headers(body)
        forged = b'[{"biz_id": "2^0", "success": false}]'
        with pytest.raises(CallbackRejected, match="signature does not match"):
            sms.parse_callback(InboundRequest(body=forged, headers=headers, query={}))
        assert sms.parse_callback(InboundRequest(body=body, headers=headers, query={})).receipts
        with pytest.raises(CallbackRejected, match="nonce already used"):
            sms.parse_callback(InboundRequest(body=body, headers=headers, query={}))
        later = sandbox_headers(body)
        clock.shift(dt.timedelta(minutes=5, seconds=1))
        with pytest.raises(CallbackRejected, match="more than 5 minutes old"):
            sms.parse_callback(InboundRequest(body=body, headers=later, query={}))
