"""Sandbox email: SendCloud's wire format (send answers; webhook events form-encoded, signed with
HMAC-SHA256 over timestamp and token with the app key).

SendCloud's signature leaves the event's fields out (its documentation offers no scheme that covers
them), so a signature is only as good as its single use: an event is refused when its timestamp (in
milliseconds) is more than 5 minutes old and when its token, SendCloud's nonce, was already used
(``connectors.callbacks``). A signature copied from a captured event cannot sign another event later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from urllib.parse import parse_qs, urlencode

from django.utils.translation import gettext_lazy as _
from pydantic import Field

from connectors.callbacks import callback_fresh, timestamp_read
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
from connectors.sandbox import Callback, Delivery, SandboxKind, SandboxSettings, json_body

from ..sandbox_sms import next_midnight

EVENTS = {"deliver": "delivered", "open": "opened", "click": "clicked", "unsubscribe": "unsubscribed"}
FAILURES = {"soft_bounce", "invalid", "report_spam"}


class EmailSandboxSettings(SandboxSettings):
    from_address: str = Field("marketing@sandbox.example", max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")
    from_name: str = Field("", max_length=100)


def event_signature(app_key: str, timestamp: str, token: str) -> str:
    return hmac.new(app_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()


@connector_kind
class SandboxEmail(SandboxKind):
    key = "sandbox_email"
    channel = Channel.EMAIL
    label = _("Email sandbox (SendCloud format)")
    settings_model = EmailSandboxSettings

    def provider_accept(self, message, provider_message_id):
        return json_body(
            {
                "result": True,
                "statusCode": 200,
                "message": "请求成功",
                "info": {"emailIdList": [provider_message_id]},
            }
        )

    def provider_refuse(self, message, code):
        return json_body(
            {"result": False, "statusCode": int(code) if code.isdigit() else 500, "message": code}
        )

    def provider_message_id_new(self) -> str:
        return f"{int(time.time() * 1000)}_{uuid.uuid4().int % 10**6}_0_0.sc-sandbox@sandbox.example"

    def callbacks_build(self, deliveries: list[Delivery]) -> list[Callback]:
        callbacks = []
        for delivery in deliveries:
            timestamp, token = str(int(time.time() * 1000)), secrets.token_hex(25)
            event = "deliver" if delivery.receipt_status == "delivered" else "soft_bounce"
            fields = {
                "event": event,
                "emailId": delivery.provider_message_id,
                "recipient": delivery.recipient,
                "timestamp": timestamp,
                "token": token,
                "signature": event_signature(self.settings.callback_secret, timestamp, token),
            }
            callbacks.append(
                Callback(
                    body=urlencode(fields).encode(),
                    content_type="application/x-www-form-urlencoded",
                    delivery_ids=(delivery.id,),
                )
            )
        return callbacks

    def answer_read(self, raw: bytes) -> SendResult:
        text = raw.decode("utf-8", "replace")
        try:
            answer = json.loads(raw)
            code = int(answer["statusCode"])
        except (ValueError, KeyError, TypeError):
            raise PermanentError("unreadable answer from the provider", raw=text) from None
        if answer.get("result") and code == 200:
            ids = (answer.get("info") or {}).get("emailIdList") or []
            if ids:
                return SendResult(provider_message_id=str(ids[0]), raw=text)
            raise PermanentError("the provider accepted the email but gave no id", raw=text)
        reason = f"{code}: {answer.get('message', '')}"
        if code in {40005, 40006}:  # wrong API user or key
            raise PauseAccountError(reason, raw=text)
        if code == 40300:  # daily quota spent
            raise DeferError(reason, until=next_midnight(), raw=text)
        if code >= 50000 or code in {500, 429}:
            raise RetryableError(reason, raw=text)
        raise PermanentError(reason, raw=text)

    def parse_callback(self, request: InboundRequest) -> CallbackAnswer:
        fields = {key: values[0] for key, values in parse_qs(request.body.decode("utf-8", "replace")).items()}
        expected = event_signature(
            self.settings.callback_secret, fields.get("timestamp", ""), fields.get("token", "")
        )
        if not hmac.compare_digest(expected, fields.get("signature", "")):
            raise CallbackRejected("signature does not match")
        callback_fresh(
            account_id=self.account_id,
            timestamp=timestamp_read(fields.get("timestamp", ""), milliseconds=True),
            nonce=fields.get("token", ""),
        )
        event, email_id = fields.get("event", ""), fields.get("emailId", "")
        if not email_id:
            raise CallbackRejected("emailId is missing")
        if event in EVENTS:
            status = EVENTS[event]
        elif event in FAILURES:
            status = "failed"
        else:
            return CallbackAnswer(receipts=[], body=b"success")
        receipt = Receipt(
            provider_message_id=email_id, status=status, detail=event, url=fields.get("url", "")
        )
        return CallbackAnswer(receipts=[receipt], body=b"success")
