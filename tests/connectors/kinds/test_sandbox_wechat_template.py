import hashlib

import pytest

from connectors.protocol import (
    CallbackRejected,
    DeferError,
    InboundRequest,
    PauseAccountError,
    PermanentError,
)
from tests.connectors.kinds.conftest import SECRET

ANSWERS = [
    (b'{"errcode":0,"errmsg":"ok","msgid":200228332}', "200228332"),
    (b'{"errcode":45009,"errmsg":"reach max api daily quota limit"}', DeferError),
    (b'{"errcode":40001,"errmsg":"invalid credential"}', PauseAccountError),
    (b'{"errcode":43004,"errmsg":"require subscribe hint"}', PermanentError),
    (b'{"errcode":40003,"errmsg":"invalid openid"}', PermanentError),
]


@pytest.mark.parametrize(("answer", "expected"), ANSWERS)
def test_answers(connector, answer, expected):
    wechat = connector("sandbox_wechat_template")
    if isinstance(expected, str):
        assert wechat.answer_read(answer).provider_message_id == expected
    else:
        with pytest.raises(expected):
            wechat.answer_read(answer)


def pushed(status: str, token: str = SECRET) -> InboundRequest:
    timestamp, nonce = "1395658920", "1320451234"
    signature = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()  # noqa: S324
    body = (
        "<xml><ToUserName><![CDATA[gh_7f083739789a]]></ToUserName><FromUserName><![CDATA[oia2TjuEGTNoeX76QEjQNrcURxG8]]>"
        "</FromUserName><CreateTime>1395658920</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>200163836</MsgID>"
        f"<Status><![CDATA[{status}]]></Status></xml>"
    ).encode()  # the example in WeChat's documentation
    query = {"signature": signature, "timestamp": timestamp, "nonce": nonce}
    return InboundRequest(body=body, headers={}, query=query, content_type="text/xml")


@pytest.mark.parametrize(
    ("status", "receipt"),
    [("success", "delivered"), ("failed:user block", "failed"), ("failed: system failed", "failed")],
)
def test_template_job_finished_events(connector, status, receipt):
    (result,) = connector("sandbox_wechat_template").parse_callback(pushed(status)).receipts
    assert (result.provider_message_id, result.status, result.detail) == ("200163836", receipt, status)


def test_a_wrong_signature_is_refused(connector):
    with pytest.raises(CallbackRejected):
        connector("sandbox_wechat_template").parse_callback(pushed("success", token="another-token"))


def follower_pushed(event: str, key: str) -> InboundRequest:
    timestamp, nonce = "1700000000", "1320451234"
    signature = hashlib.sha1("".join(sorted([SECRET, timestamp, nonce])).encode()).hexdigest()  # noqa: S324
    body = (
        "<xml><ToUserName><![CDATA[gh_sandbox0000]]></ToUserName><FromUserName><![CDATA[oFollower1]]>"
        "</FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event><EventKey><![CDATA[{key}]]></EventKey>"
        "<Ticket><![CDATA[TICKET]]></Ticket></xml>"
    ).encode()  # the shape of WeChat's documented follow and scan pushes
    query = {"signature": signature, "timestamp": timestamp, "nonce": nonce}
    return InboundRequest(body=body, headers={}, query=query, content_type="text/xml")


@pytest.mark.parametrize(
    ("event", "key", "name", "scene"),
    [
        ("subscribe", "qrscene_store-42", "wechat_follow", "store-42"),
        ("subscribe", "", "wechat_follow", ""),
        ("SCAN", "store-42", "wechat_qr_scanned", "store-42"),
        ("unsubscribe", "", "wechat_unfollow", ""),
    ],
)
def test_follower_pushes_become_events_on_the_follower(connector, event, key, name, scene):
    answer = connector("sandbox_wechat_template").parse_callback(follower_pushed(event, key))
    assert (answer.receipts, answer.body) == ([], b"success")
    (pushed,) = answer.events
    assert (pushed.name, pushed.properties["scene"]) == (name, scene)
    assert pushed.traits == {"wechat_openid": "oFollower1", "wechat_appid": "wx0000sandbox00000"}
    assert pushed.message_id == f"wechat-wx0000sandbox00000-oFollower1-1700000000-{event}"
