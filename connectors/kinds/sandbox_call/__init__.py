"""Sandbox calls: an outbound-call platform's answers (``{"code": 0, "data": {"callId"}}``) and its
call-result push (answered or not, duration, intent), signed with HMAC-SHA256."""

from __future__ import annotations

import json
import uuid

from django.utils.translation import gettext_lazy as _

from connectors.protocol import (
    CallbackAnswer,
    CallbackRejected,
    Channel,
    InboundRequest,
    PauseAccountError,
    PermanentError,
    Receipt,
    RetryableError,
    SendResult,
)
from connectors.registry import connector_kind
from connectors.sandbox import Callback, Delivery, SandboxKind, json_body, signed_headers

RETRY_CODES = {1002, 5000}  # concurrency limit, platform busy
PAUSE_CODES = {1001, 4010}  # balance, credentials


@connector_kind
class SandboxCall(SandboxKind):
    key = "sandbox_call"
    channel = Channel.CALL
    label = _("Call sandbox")

    def provider_accept(self, message, provider_message_id):
        return json_body({"code": 0, "message": "success", "data": {"callId": provider_message_id}})

    def provider_refuse(self, message, code):
        return json_body({"code": int(code) if code.isdigit() else 5000, "message": code, "data": None})

    def callbacks_build(self, deliveries: list[Delivery]) -> list[Callback]:
        callbacks = []
        for delivery in deliveries:
            answered = delivery.receipt_status == "delivered"
            body = json_body(
                {
                    "callId": delivery.provider_message_id,
                    "callee": delivery.recipient,
                    "status": "answered" if answered else "no_answer",
                    "duration": 37 if answered else 0,
                    "intent": "A" if answered else "",
                }
            )
            callbacks.append(
                Callback(
                    body=body,
                    headers=signed_headers(self.settings.callback_secret, body),
                    delivery_ids=(delivery.id,),
                )
            )
        return callbacks

    def provider_message_id_new(self) -> str:
        return "call-" + uuid.uuid4().hex[:20]

    def answer_read(self, raw: bytes) -> SendResult:
        text = raw.decode("utf-8", "replace")
        try:
            answer = json.loads(raw)
            code = int(answer["code"])
        except (ValueError, KeyError, TypeError):
            raise PermanentError("unreadable answer from the provider", raw=text) from None
        if code == 0 and (answer.get("data") or {}).get("callId"):
            return SendResult(provider_message_id=str(answer["data"]["callId"]), raw=text)
        reason = f"{code}: {answer.get('message', '')}"
        if code in RETRY_CODES:
            raise RetryableError(reason, raw=text)
        if code in PAUSE_CODES:
            raise PauseAccountError(reason, raw=text)
        raise PermanentError(reason, raw=text)

    def parse_callback(self, request: InboundRequest) -> CallbackAnswer:
        self.callback_verify(request)
        try:
            result = json.loads(request.body)
            answered = result["status"] == "answered"
            receipt = Receipt(
                provider_message_id=str(result["callId"]),
                status="delivered" if answered else "failed",
                detail=result["status"],
                data={"duration": int(result.get("duration") or 0), "intent": result.get("intent") or ""},
            )
        except (ValueError, KeyError, TypeError) as error:
            raise CallbackRejected(f"not a call result: {error}") from None
        return CallbackAnswer(receipts=[receipt], body=json_body({"code": 0}))
