import json

import pytest

from connectors.protocol import (
    CallbackRejected,
    DeferError,
    PauseAccountError,
    PermanentError,
    RetryableError,
)
from tests.connectors.kinds.conftest import hmac_request

ANSWERS = [
    (b'{"errcode":0,"errmsg":"ok","invaliduser":"","msgid":"xxxx"}', "xxxx"),
    (b'{"errcode":0,"errmsg":"ok","invaliduser":"userid1|userid2","msgid":"xxxx"}', PermanentError),
    (b'{"errcode":45033,"errmsg":"api concurrent out of limit"}', RetryableError),
    (b'{"errcode":45009,"errmsg":"api freq out of limit"}', DeferError),
    (b'{"errcode":60020,"errmsg":"not allow to access from your ip"}', PauseAccountError),
    (b'{"errcode":81013,"errmsg":"user & party & tag all invalid"}', PermanentError),
]


@pytest.mark.parametrize(("answer", "expected"), ANSWERS)
def test_answers(connector, answer, expected):
    wecom = connector("sandbox_wecom")
    if isinstance(expected, str):
        assert wecom.answer_read(answer).provider_message_id == expected
    else:
        with pytest.raises(expected):
            wecom.answer_read(answer)


def test_receipts(connector):
    body = json.dumps(
        {"receipts": [{"msgid": "m1", "status": "replied"}, {"msgid": "m2", "status": "odd"}]}
    ).encode()
    answer = connector("sandbox_wecom").parse_callback(hmac_request(body))
    assert [(r.provider_message_id, r.status) for r in answer.receipts] == [("m1", "replied")]
    with pytest.raises(CallbackRejected):
        connector("sandbox_wecom").parse_callback(hmac_request(b"[]"))
