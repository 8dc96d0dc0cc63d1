"""Sandbox webhook: a receiving server that answers ``{"id": ...}`` and posts status updates back."""

from __future__ import annotations

import json
import uuid

from django.utils.translation import gettext_lazy as _

from connectors.protocol import (
    CallbackAnswer,
    CallbackRejected,
    Channel,
    InboundRequest,
    PermanentError,
    Receipt,
    RetryableError,
    SendResult,
)
from connectors.registry import connector_kind
from connectors.sandbox import Callback, Delivery, SandboxKind, json_body, signed_headers


@connector_kind
class SandboxWebhook(SandboxKind):
    key = "sandbox_webhook"
    channel = Channel.WEBHOOK
    label = _("Webhook sandbox")

    def provider_accept(self, message, provider_message_id):
        return json_body({"id": provider_message_id, "ok": True})

    def provider_refuse(self, message, code):
        return json_body({"ok": False, "error": code})

    def callbacks_build(self, deliveries: list[Delivery]) -> list[Callback]:
        callbacks = []
        for delivery in deliveries:
            body = json_body({"id": delivery.provider_message_id, "status": delivery.receipt_status})
            callbacks.append(
                Callback(
                    body=body,
                    headers=signed_headers(self.settings.callback_secret, body),
                    delivery_ids=(delivery.id,),
                )
            )
        return callbacks

    def provider_message_id_new(self) -> str:
        return str(uuid.uuid4())

    def answer_read(self, raw: bytes) -> SendResult:
        text = raw.decode("utf-8", "replace")
        try:
            answer = json.loads(raw)
            ok = bool(answer["ok"])
        except (ValueError, KeyError, TypeError):
            raise PermanentError("unreadable answer from the receiving server", raw=text) from None
        if ok and answer.get("id"):
            return SendResult(provider_message_id=str(answer["id"]), raw=text)
        if answer.get("error") in {"busy", "429", "503"}:
            raise RetryableError(str(answer.get("error")), raw=text)
        raise PermanentError(str(answer.get("error") or "refused"), raw=text)

    def parse_callback(self, request: InboundRequest) -> CallbackAnswer:
        self.callback_verify(request)
        try:
            update = json.loads(request.body)
            receipt = Receipt(provider_message_id=str(update["id"]), status=update["status"])
        except (ValueError, KeyError, TypeError) as error:
            raise CallbackRejected(f"not a status update: {error}") from None
        if receipt.status not in {"delivered", "failed", "replied"}:
            raise CallbackRejected(f"unknown status {receipt.status!r}")
        return CallbackAnswer(receipts=[receipt], body=b'{"ok":true}', content_type="application/json")
