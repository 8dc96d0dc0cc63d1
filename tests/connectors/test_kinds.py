"""Each kind reads its provider's answers as the provider writes them: codes to error classes."""

import pytest

from connectors.protocol import DeferError, PauseAccountError, PermanentError, RetryableError
from connectors.registry import kind_get
from connectors.sandbox import SandboxSettings

CASES = [
    ("sandbox_sms", b'{"Code":"OK","Message":"OK","BizId":"900619^0","RequestId":"F6"}', "900619^0"),
    (
        "sandbox_sms",
        b'{"Code":"isv.BUSINESS_LIMIT_CONTROL","Message":"\xe8\xa7\xa6\xe5\x8f\x91"}',
        RetryableError,
    ),
    ("sandbox_sms", b'{"Code":"isv.DAY_LIMIT_CONTROL","Message":"x"}', DeferError),
    ("sandbox_sms", b'{"Code":"isv.AMOUNT_NOT_ENOUGH","Message":"x"}', PauseAccountError),
    ("sandbox_sms", b'{"Code":"isv.MOBILE_NUMBER_ILLEGAL","Message":"x"}', PermanentError),
    ("sandbox_wechat_template", b'{"errcode":0,"errmsg":"ok","msgid":200228332}', "200228332"),
    ("sandbox_wechat_template", b'{"errcode":45009,"errmsg":"reach max api daily quota limit"}', DeferError),
    ("sandbox_wechat_template", b'{"errcode":40001,"errmsg":"invalid credential"}', PauseAccountError),
    ("sandbox_wechat_template", b'{"errcode":43004,"errmsg":"require subscribe"}', PermanentError),
    ("sandbox_wechat_template", b'{"errcode":-1,"errmsg":"system error"}', RetryableError),
    ("sandbox_wecom", b'{"errcode":0,"errmsg":"ok","invaliduser":"","msgid":"abc"}', "abc"),
    ("sandbox_wecom", b'{"errcode":0,"errmsg":"ok","invaliduser":"zhangsan","msgid":"abc"}', PermanentError),
    ("sandbox_wecom", b'{"errcode":60020,"errmsg":"not allow to access from your ip"}', PauseAccountError),
    ("sandbox_email", b'{"result":true,"statusCode":200,"message":"ok","info":{"emailIdList":["e1"]}}', "e1"),
    ("sandbox_email", b'{"result":false,"statusCode":40005,"message":"auth"}', PauseAccountError),
    ("sandbox_email", b'{"result":false,"statusCode":40300,"message":"quota"}', DeferError),
    ("sandbox_call", b'{"code":0,"message":"success","data":{"callId":"c-1"}}', "c-1"),
    ("sandbox_call", b'{"code":1002,"message":"busy","data":null}', RetryableError),
    ("sandbox_call", b'{"code":1001,"message":"balance","data":null}', PauseAccountError),
    ("sandbox_webhook", b'{"id":"w-1","ok":true}', "w-1"),
]


@pytest.mark.parametrize(("kind", "answer", "expected"), CASES)
def test_answers_are_read_like_the_provider_writes_them(kind, answer, expected):
    connector = kind_get(kind)(
        account_id=1, settings=kind_get(kind).settings_model.model_validate({"callback_secret": "secret-123"})
    )
    if isinstance(expected, str):
        assert connector.answer_read(answer).provider_message_id == expected
    else:
        with pytest.raises(expected) as raised:
            connector.answer_read(answer)
        assert raised.value.raw == answer.decode()


@pytest.mark.parametrize("kind", ["sandbox_sms", "sandbox_wechat_template", "sandbox_email", "sandbox_call"])
def test_garbage_is_a_permanent_failure_with_the_answer_kept(kind):
    connector = kind_get(kind)(account_id=1, settings=SandboxSettings(callback_secret="secret-123"))
    with pytest.raises(PermanentError) as raised:
        connector.answer_read(b"<html>502 Bad Gateway</html>")
    assert raised.value.raw == "<html>502 Bad Gateway</html>"
