"""Webhook: POSTs the message as JSON to a URL of the customer's own systems, signed with
HMAC-SHA256 (``X-Signature``) and carrying the ``Idempotency-Key``. 2xx with ``{"id": ...}`` is
accepted; 429 and 5xx are retried; 401/403 pause the account; a redirect is not followed and fails
the message; anything unreadable fails the message with the answer kept. The URL goes through
``connectors.safe_http``: public addresses, ports 80 and 443, unless an admin allows more; a URL
that points elsewhere pauses the account."""

from __future__ import annotations

import hashlib
import hmac
import json

from django.utils.translation import gettext_lazy as _
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from connectors import safe_http
from connectors.protocol import (
    CallbackAnswer,
    CallbackRejected,
    Channel,
    ConnectorKind,
    InboundRequest,
    OutgoingMessage,
    PauseAccountError,
    PermanentError,
    Receipt,
    RetryableError,
    SendResult,
    secret,
)
from connectors.registry import connector_kind

MAX_ANSWER = 64 * 1024


class WebhookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl = Field(description="Where each message is POSTed.")
    timeout_seconds: float = Field(10, gt=0, le=60)
    signing_secret: str = secret(min_length=16, max_length=200, description="Signs requests both ways.")

    @field_validator("url")
    @classmethod
    def _public(cls, url: HttpUrl) -> HttpUrl:
        problem = safe_http.url_problem(str(url))
        if problem:
            raise ValueError(problem)
        return url


def signature(secret_value: str, body: bytes) -> str:
    return hmac.new(secret_value.encode(), body, hashlib.sha256).hexdigest()


@connector_kind
class Webhook(ConnectorKind):
    key = "webhook"
    channel = Channel.WEBHOOK
    label = _("Webhook")
    settings_model = WebhookSettings

    def send(self, message: OutgoingMessage) -> SendResult:
        body = json.dumps(
            {
                "id": message.id,
                "idempotency_key": message.idempotency_key,
                "recipient": message.recipient,
                "customer_id": message.customer_id,
                "content": message.content,
            },
            ensure_ascii=False,
        ).encode()
        try:
            answer = safe_http.post(
                str(self.settings.url),
                body=body,
                headers={
                    "Content-Type": "application/json",
                    "Idempotency-Key": message.idempotency_key,
                    "X-Signature": signature(self.settings.signing_secret, body),
                },
                timeout=self.settings.timeout_seconds,
                max_answer=MAX_ANSWER,
            )
        except safe_http.DestinationRefused as error:
            raise PauseAccountError(str(error)) from None
        except safe_http.OutboundError as error:
            raise RetryableError(f"no answer: {error}") from None
        status, raw = answer.status, answer.body
        text = raw.decode("utf-8", "replace")
        if status == 429 or status >= 500:
            raise RetryableError(f"HTTP {status}", raw=text)
        if status in {401, 403}:
            raise PauseAccountError(f"HTTP {status}: the server refuses our signature", raw=text)
        if answer.redirect:
            raise PermanentError(
                f"HTTP {status}: redirects are not followed ({answer.location[:200]})", raw=text
            )
        if status >= 300:
            raise PermanentError(f"HTTP {status}", raw=text)
        try:
            provider_id = str(json.loads(raw)["id"])
        except (ValueError, KeyError, TypeError):
            raise PermanentError("unreadable answer from the receiving server", raw=text) from None
        return SendResult(provider_message_id=provider_id, raw=text)

    def parse_callback(self, request: InboundRequest) -> CallbackAnswer:
        expected = signature(self.settings.signing_secret, request.body)
        if not hmac.compare_digest(expected, request.headers.get("x-signature", "")):
            raise CallbackRejected("signature does not match")
        try:
            update = json.loads(request.body)
            receipt = Receipt(provider_message_id=str(update["id"]), status=update["status"])
        except (ValueError, KeyError, TypeError) as error:
            raise CallbackRejected(f"not a status update: {error}") from None
        if receipt.status not in {"delivered", "failed", "replied"}:
            raise CallbackRejected(f"unknown status {receipt.status!r}")
        return CallbackAnswer(receipts=[receipt], body=b'{"ok":true}', content_type="application/json")
