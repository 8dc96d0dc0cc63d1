import datetime as dt
import hashlib
import time

import pytest
import time_machine

from connectors.protocol import (
    CallbackRejected,
    DeferError,
    InboundRequest,
    PauseAccountError,
    PermanentError,
)
from tests.connectors.kinds.conftest import SECRET
from tests.fakes import wechat as wechat_peer

APPID = "wx0000sandbox00000"

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


def opened(query: dict, body: bytes) -> InboundRequest:
    return InboundRequest(body=body, headers={}, query=query, content_type="text/xml")


def wechat(connector, **settings):
    return connector("sandbox_wechat_template", encoding_aes_key=wechat_peer.AES_KEY, **settings)


def pushed(status: str, token: str = SECRET, **push) -> InboundRequest:
    """WeChat's documented TEMPLATESENDJOBFINISH event, encrypted and signed as WeChat does."""
    message = wechat_peer.template_job_finished(
        openid="oia2TjuEGTNoeX76QEjQNrcURxG8", msg_id="200163836", status=status
    )
    return opened(*wechat_peer.push(message, appid=APPID, token=token, **push))


@pytest.mark.parametrize(
    ("status", "receipt"),
    [("success", "delivered"), ("failed:user block", "failed"), ("failed: system failed", "failed")],
)
def test_template_job_finished_events(connector, status, receipt):
    (result,) = wechat(connector).parse_callback(pushed(status)).receipts
    assert (result.provider_message_id, result.status, result.detail) == ("200163836", receipt, status)


def test_a_wrong_signature_is_refused(connector):
    with pytest.raises(CallbackRejected, match="signature does not match"):
        wechat(connector).parse_callback(pushed("success", token="another-token"))


def test_wechats_published_sample_decrypts(connector):
    """The golden vector from WeChat's message encryption documentation (token QDG6eK)."""
    sample = connector("sandbox_wechat_template")
    # The sample's 6-character token is shorter than the sandbox lets an admin choose.
    sample.settings = sample.settings.model_copy(
        update={
            "callback_secret": wechat_peer.SAMPLE_TOKEN,
            "encoding_aes_key": wechat_peer.SAMPLE_AES_KEY,
            "appid": wechat_peer.SAMPLE_APPID,
        }
    )
    with time_machine.travel(dt.datetime.fromtimestamp(1409659813 + 10, tz=dt.UTC), tick=False):
        root = sample.callback_open(opened(wechat_peer.SAMPLE_QUERY, wechat_peer.SAMPLE_BODY))
    assert (root.findtext("Content"), root.findtext("MsgId")) == ("hello", "4561255354251345929")


def test_a_plain_mode_push_is_refused_however_it_is_signed(connector):
    timestamp, nonce = str(int(time.time())), "1320451234"
    signature = hashlib.sha1("".join(sorted([SECRET, timestamp, nonce])).encode()).hexdigest()  # noqa: S324
    message = wechat_peer.template_job_finished(openid="o1", msg_id="1", status="success")
    query = {"signature": signature, "timestamp": timestamp, "nonce": nonce}
    with pytest.raises(CallbackRejected, match="only safe-mode pushes"):
        wechat(connector).parse_callback(opened(query, message))


def test_a_captured_signature_signs_no_other_body_and_works_once_within_five_minutes(connector):
    """Review finding 6's proof: a valid (timestamp, nonce, signature) taken from an access log,
    replayed with another body, replayed as it was, and replayed later."""
    kind = wechat(connector)
    start = dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False) as clock:
        query, body = wechat_peer.push(
            wechat_peer.template_job_finished(openid="o1", msg_id="200163836", status="success"),
            appid=APPID,
            token=SECRET,
        )
        _forged_query, forged_body = wechat_peer.push(
            wechat_peer.follower_event(openid="o-victim", event="unsubscribe"), appid=APPID, token="unknown"
        )
        with pytest.raises(CallbackRejected, match="signature does not match"):
            kind.parse_callback(opened(query, forged_body))  # the captured query, another body
        assert kind.parse_callback(opened(query, body)).receipts[0].status == "delivered"
        with pytest.raises(CallbackRejected, match="nonce already used"):
            kind.parse_callback(opened(query, body))
        clock.shift(dt.timedelta(minutes=5, seconds=1))
        with pytest.raises(CallbackRejected, match="more than 5 minutes old"):
            kind.parse_callback(opened(query, body))
        early_query, early_body = wechat_peer.push(
            wechat_peer.template_job_finished(openid="o1", msg_id="2", status="success"),
            appid=APPID,
            token=SECRET,
            timestamp=int(time.time()) + 600,
        )
        with pytest.raises(CallbackRejected, match="in the future"):
            kind.parse_callback(opened(early_query, early_body))


def test_a_push_for_another_app_id_is_refused(connector):
    message = wechat_peer.template_job_finished(openid="o1", msg_id="1", status="success")
    query, body = wechat_peer.push(message, appid="wx1111111111111111", token=SECRET)
    with pytest.raises(CallbackRejected, match="another app id"):
        wechat(connector).parse_callback(opened(query, body))


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10 if n > 1 else "&lol;" * 10}">' for n in range(1, 10))
    + "]><xml><Encrypt>&lol9;</Encrypt></xml>"
)
EXTERNAL_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
    "<xml><Encrypt>&secret;</Encrypt></xml>"
)


@pytest.mark.parametrize("bomb", [BILLION_LAUGHS, EXTERNAL_ENTITY])
def test_xml_bombs_are_refused_unexpanded_outside_and_inside_the_encryption(connector, bomb):
    kind = wechat(connector)
    query, _body = wechat_peer.push(b"<xml/>", appid=APPID, token=SECRET)
    with pytest.raises(CallbackRejected, match="document type"):
        kind.parse_callback(opened(query, bomb.encode()))
    with pytest.raises(CallbackRejected, match="document type"):  # signed and encrypted by the token's holder
        kind.parse_callback(opened(*wechat_peer.push(bomb.encode(), appid=APPID, token=SECRET)))


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
    message = wechat_peer.follower_event(openid="oFollower1", event=event, key=key, created=1700000000)
    answer = wechat(connector).parse_callback(opened(*wechat_peer.push(message, appid=APPID, token=SECRET)))
    assert (answer.receipts, answer.body) == ([], b"success")
    (pushed,) = answer.events
    assert (pushed.name, pushed.properties["scene"]) == (name, scene)
    assert pushed.traits == {"wechat_openid": "oFollower1", "wechat_appid": "wx0000sandbox00000"}
    assert pushed.message_id == f"wechat-wx0000sandbox00000-oFollower1-1700000000-{event}"


def test_the_sandbox_provider_pushes_what_the_kind_accepts(connector):
    """The sandbox's own sender (the quickstart's receipts) encrypts and signs the new way."""
    from connectors.sandbox import Delivery

    kind = wechat(connector)
    delivery = Delivery(
        id=1,
        provider_message_id="42",
        idempotency_key="k",
        recipient="o1",
        receipt_status="delivered",
        content={},
        received_at=dt.datetime.now(dt.UTC),
    )
    (callback,) = kind.callbacks_build([delivery])
    assert b"TEMPLATESENDJOBFINISH" not in callback.body  # encrypted
    request = InboundRequest(body=callback.body, headers={}, query=callback.query, content_type="text/xml")
    assert [(r.provider_message_id, r.status) for r in kind.parse_callback(request).receipts] == [
        ("42", "delivered")
    ]
