"""Sandbox WeCom: the ``message/send`` API's answers; receipts posted as signed JSON (WeCom itself
reports no deliveries, so the sandbox's receipts stand for what a read receipt would say)."""

from __future__ import annotations

import json
import uuid

from django.utils.translation import gettext_lazy as _
from pydantic import Field

from connectors.protocol import (
    CallbackAnswer,
    CallbackRejected,
    Channel,
    DeferError,
    InboundRequest,
    PauseAccountError,
    PermanentError,
    Receipt,
    RetryableError,
    SendResult,
)
from connectors.registry import connector_kind
from connectors.sandbox import Callback, Delivery, SandboxKind, SandboxSettings, json_body, signed_headers

from ..sandbox_sms import next_midnight

RETRY_CODES = {-1, 45033}
DEFER_CODES = {45009}
PAUSE_CODES = {40014, 42001, 60020, 40056}


class WecomSandboxSettings(SandboxSettings):
    corp_id: str = Field("wwsandbox0000000", pattern=r"^ww[0-9a-zA-Z]{6,30}$")
    agent_id: int = Field(1000002, ge=1)


@connector_kind
class SandboxWecom(SandboxKind):
    key = "sandbox_wecom"
    channel = Channel.WECOM
    label = _("WeCom sandbox")
    settings_model = WecomSandboxSettings

    def provider_accept(self, message, provider_message_id):
        return json_body({"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": provider_message_id})

    def provider_refuse(self, message, code):
        return json_body({"errcode": int(code) if code.lstrip("-").isdigit() else -1, "errmsg": code})

    def callbacks_build(self, deliveries: list[Delivery]) -> list[Callback]:
        body = json_body(
            {
                "receipts": [
                    {"msgid": delivery.provider_message_id, "status": delivery.receipt_status}
                    for delivery in deliveries
                ]
            }
        )
        return [
            Callback(
                body=body,
                headers=signed_headers(self.settings.callback_secret, body),
                delivery_ids=tuple(delivery.id for delivery in deliveries),
            )
        ]

    def provider_message_id_new(self) -> str:
        return uuid.uuid4().hex[:24]

    def answer_read(self, raw: bytes) -> SendResult:
        text = raw.decode("utf-8", "replace")
        try:
            answer = json.loads(raw)
            code = int(answer["errcode"])
        except (ValueError, KeyError, TypeError):
            raise PermanentError("unreadable answer from the provider", raw=text) from None
        if code == 0 and answer.get("msgid") and not answer.get("invaliduser"):
            return SendResult(provider_message_id=str(answer["msgid"]), raw=text)
        reason = (
            f"{code}: {answer.get('errmsg', '')}" if code else f"invalid user {answer.get('invaliduser')}"
        )
        if code in RETRY_CODES:
            raise RetryableError(reason, raw=text)
        if code in DEFER_CODES:
            raise DeferError(reason, until=next_midnight(), raw=text)
        if code in PAUSE_CODES:
            raise PauseAccountError(reason, raw=text)
        raise PermanentError(reason, raw=text)

    def parse_callback(self, request: InboundRequest) -> CallbackAnswer:
        self.callback_verify(request)
        try:
            items = json.loads(request.body)["receipts"]
            receipts = [
                Receipt(
                    provider_message_id=str(item["msgid"]),
                    status=item["status"],
                    detail=item["status"],
                    raw=json.dumps(item, ensure_ascii=False),
                )
                for item in items
                if item["status"] in {"delivered", "failed", "replied"}
            ]
        except (ValueError, KeyError, TypeError) as error:
            raise CallbackRejected(f"not a receipt list: {error}") from None
        return CallbackAnswer(receipts=receipts, body=json_body({"errcode": 0, "errmsg": "ok"}))
