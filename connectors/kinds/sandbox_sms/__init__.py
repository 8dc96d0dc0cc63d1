"""Sandbox SMS: Aliyun SMS's wire format (SendSms answers, delivery reports pushed as JSON arrays)."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

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
from connectors.sandbox import Callback, Delivery, SandboxKind, json_body, signed_headers

RETRY_CODES = {"Throttling.User", "isv.BUSINESS_LIMIT_CONTROL", "ServiceUnavailable"}
DEFER_CODES = {"isv.DAY_LIMIT_CONTROL"}
PAUSE_CODES = {"InvalidAccessKeyId.NotFound", "SignatureDoesNotMatch", "isv.AMOUNT_NOT_ENOUGH"}


def next_midnight() -> dt.datetime:
    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    return timezone.make_aware(dt.datetime.combine(tomorrow, dt.time.min))


@connector_kind
class SandboxSms(SandboxKind):
    key = "sandbox_sms"
    channel = Channel.SMS
    label = _("SMS sandbox (Aliyun format)")

    def provider_accept(self, message, provider_message_id):
        return json_body(
            {"Code": "OK", "Message": "OK", "BizId": provider_message_id, "RequestId": str(uuid.uuid4())}
        )

    def provider_refuse(self, message, code):
        return json_body({"Code": code, "Message": code, "RequestId": str(uuid.uuid4())})

    def provider_message_id_new(self) -> str:
        return f"{uuid.uuid4().int % 10**18:018d}^0"

    def callbacks_build(self, deliveries: list[Delivery]) -> list[Callback]:
        reports = [
            {
                "phone_number": delivery.recipient,
                "send_time": delivery.received_at.strftime("%Y-%m-%d %H:%M:%S"),
                "report_time": timezone.localtime().strftime("%Y-%m-%d %H:%M:%S"),
                "success": delivery.receipt_status == "delivered",
                "err_code": "DELIVERED" if delivery.receipt_status == "delivered" else "MK:0001",
                "err_msg": "用户接收成功" if delivery.receipt_status == "delivered" else "号码停机",
                "sms_size": "1",
                "biz_id": delivery.provider_message_id,
                "out_id": delivery.idempotency_key,
            }
            for delivery in deliveries
        ]
        body = json_body(reports)
        return [
            Callback(
                body=body,
                headers=signed_headers(self.settings.callback_secret, body),
                delivery_ids=tuple(delivery.id for delivery in deliveries),
            )
        ]

    def answer_read(self, raw: bytes) -> SendResult:
        text = raw.decode("utf-8", "replace")
        try:
            answer = json.loads(raw)
            code = answer["Code"]
        except (ValueError, KeyError, TypeError):
            raise PermanentError("unreadable answer from the provider", raw=text) from None
        if code == "OK" and answer.get("BizId"):
            return SendResult(provider_message_id=answer["BizId"], raw=text)
        reason = f"{code}: {answer.get('Message', '')}"
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
            reports = json.loads(request.body)
            receipts = [
                Receipt(
                    provider_message_id=str(report["biz_id"]),
                    status="delivered" if report["success"] else "failed",
                    detail=f"{report.get('err_code', '')} {report.get('err_msg', '')}".strip(),
                    idempotency_key=str(report.get("out_id") or ""),
                    raw=json.dumps(report, ensure_ascii=False),
                )
                for report in reports
            ]
        except (ValueError, KeyError, TypeError) as error:
            raise CallbackRejected(f"not a delivery report list: {error}") from None
        return CallbackAnswer(
            receipts=receipts, body=json_body({"code": 0, "msg": "接收成功"}), content_type="application/json"
        )
