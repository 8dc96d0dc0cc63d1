"""Sandbox WeChat template messages: the Official Account API's answers and its event push (XML,
``TEMPLATESENDJOBFINISH``), signed the way WeChat signs: SHA-1 over the sorted token, timestamp and
nonce in the query string."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import time
import uuid
from xml.etree import ElementTree

from django.utils.translation import gettext_lazy as _
from pydantic import Field

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


class WechatSandboxSettings(SandboxSettings):
    appid: str = Field("wx0000sandbox00000", pattern=r"^wx[0-9a-zA-Z]{16}$", description="The app id.")
    original_id: str = Field("gh_sandbox0000", max_length=40)


def wechat_signature(token: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()  # noqa: S324 (WeChat's scheme)


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
            timestamp, nonce = str(int(time.time())), secrets.token_hex(8)
            query = {
                "signature": wechat_signature(self.settings.callback_secret, timestamp, nonce),
                "timestamp": timestamp,
                "nonce": nonce,
                "openid": delivery.recipient,
            }
            callbacks.append(
                Callback(body=body, content_type="text/xml", query=query, delivery_ids=(delivery.id,))
            )
        return callbacks

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

    def parse_callback(self, request: InboundRequest) -> CallbackAnswer:
        query = request.query
        expected = wechat_signature(
            self.settings.callback_secret, query.get("timestamp", ""), query.get("nonce", "")
        )
        if not hmac.compare_digest(expected, query.get("signature", "")):
            raise CallbackRejected("signature does not match")
        try:
            # The standard library's expat expands no external entities; the body is a few fields.
            root = ElementTree.fromstring(request.body)  # noqa: S314
        except ElementTree.ParseError as error:
            raise CallbackRejected(f"not XML: {error}") from None
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

    def _follower_event(self, root, event: str) -> InboundEvent:
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
