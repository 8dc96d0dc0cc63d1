"""Sandbox WeChat template messages: the Official Account API's answers and its event push (XML,
``TEMPLATESENDJOBFINISH``, follows and QR scans) in WeChat's safe mode (``encrypt_type=aes``): the
push is AES-encrypted with the account's EncodingAESKey and ``msg_signature`` is SHA-1 over the
sorted token, timestamp, nonce and the encrypted body, so a signature seen in a log signs nothing
else. Plain-mode pushes (whose signature leaves the body out) are refused. The crypto is wechatpy's;
the XML is read by defusedxml; the timestamp and nonce are checked by ``connectors.callbacks``."""

from __future__ import annotations

import datetime as dt
import hmac
import json
import secrets
import string
import struct
import time
import uuid
from xml.etree.ElementTree import Element

from django.utils.translation import gettext_lazy as _
from pydantic import Field
from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException
from wechatpy.utils import WeChatSigner

from connectors.callbacks import callback_fresh, timestamp_read, xml_read
from connectors.protocol import (
    CallbackAnswer,
    CallbackRejected,
    Channel,
    DeferError,
    InboundEvent,
    InboundRequest,
    PauseAccountError,
    PermanentError,
    Receipt,
    RetryableError,
    SendResult,
    secret,
)
from connectors.registry import connector_kind
from connectors.sandbox import Callback, Delivery, SandboxKind, SandboxSettings, json_body

from ..sandbox_sms import next_midnight

RETRY_CODES = {-1, 45011}  # system busy; API minute frequency
DEFER_CODES = {45009}  # daily API quota reached
PAUSE_CODES = {40001, 40125, 40164, 42001, 48001}  # credentials, IP whitelist, unauthorised API
STATUS = {"success": "delivered"}
# The Official Account's pushes about followers, as events on the follower's timeline. A follow
# through a parametric QR code carries ``qrscene_<scene>``; a scan by a follower carries the scene.
FOLLOWER_EVENTS = {
    "subscribe": "wechat_follow",
    "SCAN": "wechat_qr_scanned",
    "unsubscribe": "wechat_unfollow",
}


def encoding_aes_key_new() -> str:
    """An EncodingAESKey as the Official Account's console makes one: 43 letters and digits."""
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(43))


class WechatSandboxSettings(SandboxSettings):
    """``callback_secret`` is the push's Token."""

    appid: str = Field("wx0000sandbox00000", pattern=r"^wx[0-9a-zA-Z]{16}$", description="The app id.")
    original_id: str = Field("gh_sandbox0000", max_length=40)
    encoding_aes_key: str = secret(
        default_factory=encoding_aes_key_new,
        pattern=r"^[0-9A-Za-z]{43}$",
        description="Encrypts the pushes (safe mode): 43 letters and digits.",
    )


def msg_signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """WeChat's safe-mode signature: SHA-1 over the four values sorted."""
    signer = WeChatSigner()
    signer.add_data(token, timestamp, nonce, encrypted)
    return signer.signature


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


@connector_kind
class SandboxWechatTemplate(SandboxKind):
    key = "sandbox_wechat_template"
    channel = Channel.WECHAT_TEMPLATE
    label = _("WeChat template message sandbox")
    settings_model = WechatSandboxSettings

    def provider_accept(self, message, provider_message_id):
        return json_body({"errcode": 0, "errmsg": "ok", "msgid": int(provider_message_id)})

    def provider_refuse(self, message, code):
        return json_body({"errcode": int(code) if code.lstrip("-").isdigit() else -1, "errmsg": code})

    def provider_message_id_new(self) -> str:
        return str(uuid.uuid4().int % 10**15)

    def callbacks_build(self, deliveries: list[Delivery]) -> list[Callback]:
        callbacks = []
        for delivery in deliveries:
            status = "success" if delivery.receipt_status == "delivered" else "failed:user block"
            body = (
                f"<xml><ToUserName>{_cdata(self.settings.original_id)}</ToUserName>"
                f"<FromUserName>{_cdata(delivery.recipient)}</FromUserName>"
                f"<CreateTime>{int(time.time())}</CreateTime><MsgType>{_cdata('event')}</MsgType>"
                f"<Event>{_cdata('TEMPLATESENDJOBFINISH')}</Event><MsgID>{delivery.provider_message_id}</MsgID>"
                f"<Status>{_cdata(status)}</Status></xml>"
            ).encode()
            callbacks.append(self._pushed(body, openid=delivery.recipient, delivery_ids=(delivery.id,)))
        return callbacks

    def _crypto(self) -> WeChatCrypto:
        settings = self.settings
        return WeChatCrypto(settings.callback_secret, settings.encoding_aes_key, settings.appid)

    def _pushed(self, plain: bytes, *, openid: str, delivery_ids: tuple[int, ...]) -> Callback:
        """The push as WeChat sends it in safe mode: the envelope holds the encrypted message, the
        query its signature, timestamp and nonce."""
        timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
        encrypted = PrpCrypto(self._crypto().key).encrypt(plain, self.settings.appid).decode()
        body = (
            f"<xml><ToUserName>{_cdata(self.settings.original_id)}</ToUserName>"
            f"<Encrypt>{_cdata(encrypted)}</Encrypt></xml>"
        ).encode()
        query = {
            "timestamp": timestamp,
            "nonce": nonce,
            "openid": openid,
            "encrypt_type": "aes",
            "msg_signature": msg_signature(self.settings.callback_secret, timestamp, nonce, encrypted),
        }
        return Callback(body=body, content_type="text/xml", query=query, delivery_ids=delivery_ids)

    def answer_read(self, raw: bytes) -> SendResult:
        text = raw.decode("utf-8", "replace")
        try:
            answer = json.loads(raw)
            code = int(answer["errcode"])
        except (ValueError, KeyError, TypeError):
            raise PermanentError("unreadable answer from the provider", raw=text) from None
        if code == 0 and answer.get("msgid"):
            return SendResult(provider_message_id=str(answer["msgid"]), raw=text)
        reason = f"{code}: {answer.get('errmsg', '')}"
        if code in RETRY_CODES:
            raise RetryableError(reason, raw=text)
        if code in DEFER_CODES:
            raise DeferError(reason, until=next_midnight(), raw=text)
        if code in PAUSE_CODES:
            raise PauseAccountError(reason, raw=text)
        raise PermanentError(reason, raw=text)

    def callback_open(self, request: InboundRequest) -> Element:
        """The pushed message, decrypted, once its signature, timestamp and nonce are checked (the
        root element), or ``CallbackRejected`` naming the problem."""
        query = request.query
        if query.get("encrypt_type") != "aes" or not query.get("msg_signature"):
            raise CallbackRejected("only safe-mode pushes are accepted (encrypt_type=aes with msg_signature)")
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        encrypted = (xml_read(request.body).findtext("Encrypt") or "").strip()
        if not encrypted:
            raise CallbackRejected("the push has no Encrypt element")
        expected = msg_signature(self.settings.callback_secret, timestamp, nonce, encrypted)
        if not hmac.compare_digest(expected, query["msg_signature"]):
            raise CallbackRejected("signature does not match")
        callback_fresh(account_id=self.account_id, timestamp=timestamp_read(timestamp), nonce=nonce)
        try:
            plain = self._crypto().decrypt_message(
                {"Encrypt": encrypted}, query["msg_signature"], timestamp, nonce
            )
        except InvalidAppIdException:
            raise CallbackRejected("the message is for another app id") from None
        except (ValueError, IndexError, struct.error):
            raise CallbackRejected("the encrypted message cannot be read with this EncodingAESKey") from None
        return xml_read(plain)

    def parse_callback(self, request: InboundRequest) -> CallbackAnswer:
        root = self.callback_open(request)
        event = root.findtext("Event") or ""
        if event in FOLLOWER_EVENTS:
            return CallbackAnswer(receipts=[], body=b"success", events=[self._follower_event(root, event)])
        if event != "TEMPLATESENDJOBFINISH":
            return CallbackAnswer(receipts=[], body=b"success")
        status = root.findtext("Status") or ""
        receipt = Receipt(
            provider_message_id=(root.findtext("MsgID") or "").strip(),
            status=STATUS.get(status, "failed"),
            detail=status,
        )
        return CallbackAnswer(receipts=[receipt], body=b"success")

    def _follower_event(self, root: Element, event: str) -> InboundEvent:
        openid = (root.findtext("FromUserName") or "").strip()
        created = (root.findtext("CreateTime") or "").strip()
        if not openid or not created.isdigit():
            raise CallbackRejected("a follower event needs FromUserName and CreateTime")
        key = (root.findtext("EventKey") or "").strip()
        scene = key.removeprefix("qrscene_") if event == "subscribe" else key
        properties = {"account": self.account_id, "appid": self.settings.appid, "scene": scene}
        if root.findtext("Ticket"):
            properties["ticket"] = root.findtext("Ticket").strip()
        return InboundEvent(
            name=FOLLOWER_EVENTS[event],
            # WeChat repeats a push it got no answer to, with the same sender, time and event.
            message_id=f"wechat-{self.settings.appid}-{openid}-{created}-{event}",
            traits={"wechat_openid": openid, "wechat_appid": self.settings.appid},
            properties=properties,
            occurred_at=dt.datetime.fromtimestamp(int(created), tz=dt.UTC),
        )
