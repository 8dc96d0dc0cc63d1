"""Test mode's sends: what the channel's sandbox provider would answer and report for a message,
applied as the dispatcher and the inbound URL apply them, without sending anything or recording it
at the sandbox. A sandbox account keeps its own behaviour (failure and error rates); any other account
is stood in for by its channel's sandbox, so a journey's test never reaches a real provider."""

from __future__ import annotations

import datetime as dt
import secrets

from django.utils import timezone

from cdp.ingest import system_events_record
from connectors.accounts import kind_instance
from connectors.models import Message, MessageLog
from connectors.protocol import InboundRequest, OutgoingMessage, ProviderError
from connectors.receipts import receipts_apply
from connectors.registry import kinds
from connectors.sandbox import GARBAGE, Delivery, SandboxKind, outcome_for


def sandbox_for(message: Message) -> SandboxKind:
    """The account's own sandbox, or the sandbox kind of the account's channel."""
    account = message.account
    connector = kind_instance(account)
    if isinstance(connector, SandboxKind):
        return connector
    for kind in kinds().values():
        if issubclass(kind, SandboxKind) and kind.channel == account.channel:
            settings = kind.settings_model.model_validate({"callback_secret": secrets.token_hex(16)})
            return kind(account_id=account.pk, settings=settings)
    raise LookupError(f"no sandbox kind for the channel {account.channel}")


def message_simulate(*, message: Message) -> str:
    """Sends a queued message to the sandbox in memory and applies its answer and receipt; returns
    the message's status afterwards."""
    if message.status != Message.Status.QUEUED:
        return message.status
    connector = sandbox_for(message)
    sandbox = connector.settings
    outgoing = OutgoingMessage(
        id=message.pk,
        idempotency_key=message.idempotency_key,
        recipient=message.recipient,
        content=message.content,
        customer_id=message.customer_id,
    )
    fate = outcome_for(account_id=message.account_id, key=message.idempotency_key, sandbox=sandbox)
    now = timezone.now()
    try:
        if fate.kind == "error":
            answer = connector.provider_refuse(outgoing, sandbox.error_code)
        elif fate.kind == "garbage":
            answer = GARBAGE
        else:
            answer = connector.provider_accept(outgoing, connector.provider_message_id_new())
        result = connector.answer_read(answer)
    except ProviderError as error:  # in a test every refusal is final: nothing is retried later
        _failed(message, error.reason, now)
        return message.status
    message.status, message.provider_message_id, message.sent_at = (
        Message.Status.SENT,
        result.provider_message_id,
        now,
    )
    message.save(update_fields=["status", "provider_message_id", "sent_at"])
    MessageLog.objects.create(message=message, at=now, step="sent", status=message.status, detail="test mode")
    delivery = Delivery(
        id=0,
        provider_message_id=result.provider_message_id,
        idempotency_key=message.idempotency_key,
        recipient=message.recipient,
        receipt_status="failed" if fate.receipt_failed else "delivered",
        content=message.content,
        received_at=now,
    )
    for callback in connector.callbacks_build([delivery]):
        parsed = connector.parse_callback(
            InboundRequest(
                body=callback.body,
                headers={key.lower(): value for key, value in (callback.headers or {}).items()},
                query=dict(callback.query or {}),
                content_type=callback.content_type,
            )
        )
        receipts_apply(account=message.account, receipts=parsed.receipts)
    message.refresh_from_db()
    return message.status


def _failed(message: Message, reason: str, now: dt.datetime) -> None:
    message.status, message.reason, message.failed_at = Message.Status.FAILED, reason[:2000], now
    message.save(update_fields=["status", "reason", "failed_at"])
    MessageLog.objects.create(message=message, at=now, step="sent", status=message.status, detail=reason)
    if message.customer_id:
        system_events_record(
            rows=[(message.customer_id, "message_failed")],
            kind="track",
            properties={"channel": message.channel, "account": message.account_id, "message": message.pk},
            moment=now,
            message_prefix=f"message_failed-test-{message.pk}",
        )
