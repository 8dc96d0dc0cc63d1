"""Writes of what comes back: providers' receipts (through the inbound URL), clicks on tracked
links, unsubscribes. Each moves its message and becomes an event on the customer's timeline."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import secrets
from collections import defaultdict

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from cdp.ingest import system_events_record
from cdp.merge import customer_survivor
from cdp.models import Customer
from cdp.services import consent_record
from cdp.tracking_limits import Bucket, tokens_take
from connectors.models import ChannelAccount, InboundCallback, Message, MessageLog, TrackedLink
from connectors.protocol import Channel, InboundEvent, Receipt

UNSUBSCRIBE_SALT = "connectors.unsubscribe"
REJECTED_BODY_KEPT = 2048

# -- customers' own actions --------------------------------------------------------------------

INBOUND_SOURCE_KINDS = {Channel.WECHAT_TEMPLATE: "wechat_oa", Channel.WECOM: "wecom"}


def inbound_events_record(*, account: ChannelAccount, events: list[InboundEvent]) -> int:
    """What customers did that a provider pushed (a follow, a QR scan), through ingestion like any
    tracked event: identity resolution finds (or creates) the customer, the event's ``message_id``
    stores a repeated push once, and journeys and rules see it as usual. Returns the events stored."""
    from cdp.ingest import batches_process, inbox_store
    from cdp.services import internal_source

    if not events:
        return 0
    source = internal_source(
        name=f"{account.name} ({account.pk})", kind=INBOUND_SOURCE_KINDS.get(account.channel, "server")
    )
    now = timezone.now()
    messages = [
        {
            "kind": "track",
            "name": event.name,
            "messageId": event.message_id,
            "userId": None,
            "anonymousId": None,
            "previousId": None,
            "timestamp": (event.occurred_at or now).isoformat(),
            "properties": event.properties,
            "traits": {},
            "context": {"traits": event.traits},
        }
        for event in events
    ]
    batch = inbox_store(source=source, events=messages, enqueue=False)
    return batches_process(batch_ids=[batch.pk], wait=True)


# -- receipts ----------------------------------------------------------------------------------

RECEIPT_EVENTS = {
    "delivered": "message_delivered",
    "failed": "message_failed",
    "opened": "message_opened",
    "clicked": "message_clicked",
    "replied": "message_replied",
    "unsubscribed": "message_unsubscribed",
}
# Which statuses a receipt may move a message from: a late "delivered" never undoes a "failed" one
# reported later, and proof of reading (opened, clicked, replied) implies delivery.
MOVES = {
    "delivered": ({"sent", "unknown", "sending"}, "delivered"),
    "failed": ({"sent", "unknown", "sending"}, "failed"),
    "opened": ({"sent", "unknown"}, "delivered"),
    "clicked": ({"sent", "unknown"}, "delivered"),
    "replied": ({"sent", "unknown"}, "delivered"),
}
TIMESTAMP = {
    "delivered": "delivered_at",
    "failed": "failed_at",
    "opened": "opened_at",
    "clicked": "clicked_at",
    "replied": "replied_at",
}


def callback_store(*, account: ChannelAccount, body: bytes, headers: dict, accepted: bool, problem: str = ""):
    """Stores the callback; returns None when the same body was already accepted (a replay). An
    accepted callback is kept raw; of a rejected one, which anyone can send, only the hash, the size
    and the first ``REJECTED_BODY_KEPT`` bytes are kept (enough to see what was wrong)."""
    kept = body if accepted else body[:REJECTED_BODY_KEPT]
    try:
        with transaction.atomic():
            return InboundCallback.objects.create(
                account=account,
                body_hash=hashlib.sha256(body).hexdigest(),
                body=kept.decode("utf-8", "replace").replace("\x00", "\\x00"),
                body_size=len(body),
                headers=headers,
                accepted=accepted,
                problem=problem[:2000],
            )
    except IntegrityError:
        return None


def callback_reject(
    *, account: ChannelAccount, body: bytes, headers: dict, problem: str, address: str
) -> float:
    """Records a rejected callback unless its client address has sent more than
    ``CALLBACK_REJECTS_PER_MINUTE`` of them: then nothing is stored, and the seconds until it may
    send another are returned (0: stored)."""
    per_minute = settings.CALLBACK_REJECTS_PER_MINUTE
    if per_minute:
        short = tokens_take([Bucket(f"callback-rejects:{address}", per_minute / 60, per_minute)])
        if short:
            return max(short.values())
    callback_store(account=account, body=body, headers=headers, accepted=False, problem=problem)
    return 0.0


def callbacks_rejected_expire(*, now: dt.datetime | None = None) -> int:
    """Deletes rejected callbacks older than ``CALLBACK_REJECTED_RETENTION_DAYS``; returns how many."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.CALLBACK_REJECTED_RETENTION_DAYS)
    deleted, _ = InboundCallback.objects.filter(accepted=False, received_at__lt=cutoff).delete()
    return deleted


@transaction.atomic
def receipts_apply(*, account: ChannelAccount, receipts: list[Receipt], raw: str = "") -> int:
    """Applies receipts to their messages (by the provider's id) and records each as an event on the
    customer's timeline. Returns how many matched a message.

    A message's log keeps the callback's raw body when the callback is about that message alone; from
    a callback that reports on many (an SMS provider's batch of hundreds), only its own part (the
    kind's ``Receipt.raw``, else the receipt as parsed): the body names other recipients, and copying
    it to each of hundreds of logs cost megabytes a callback (the body is kept once, with the
    callback)."""
    if not receipts:
        return 0
    ids = sorted({receipt.provider_message_id for receipt in receipts})
    keys = sorted({receipt.idempotency_key for receipt in receipts if receipt.idempotency_key})
    found = list(
        Message.objects.select_for_update()
        .filter(Q(provider_message_id__in=ids) | Q(idempotency_key__in=keys), account=account)
        .order_by("pk")
    )
    messages = {message.provider_message_id: message for message in found if message.provider_message_id}
    by_key = {message.idempotency_key: message for message in found}
    now = timezone.now()
    logs, events = [], defaultdict(list)
    changed, changed_fields = {}, set()
    matched = 0
    for receipt in receipts:
        message = messages.get(receipt.provider_message_id) or by_key.get(receipt.idempotency_key)
        if message is None:
            continue
        fields = []
        if not message.provider_message_id:  # in doubt until now: the provider had it
            message.provider_message_id = receipt.provider_message_id
            fields.append("provider_message_id")
        matched += 1
        when = receipt.occurred_at or now
        move = MOVES.get(receipt.status)
        if move and message.status in move[0]:
            message.status = move[1]
            message.reason = receipt.detail if receipt.status == "failed" else ""
            fields += ["status", "reason"]
        stamp = TIMESTAMP.get(receipt.status)
        if stamp and getattr(message, stamp) is None:
            setattr(message, stamp, when)
            fields.append(stamp)
        if move and move[1] == "delivered" and message.delivered_at is None and receipt.status != "delivered":
            message.delivered_at = when
            fields.append("delivered_at")
        if fields:
            changed[message.pk] = message
            changed_fields.update(fields)
        logs.append(
            MessageLog(
                message=message,
                at=now,
                step="receipt",
                status=message.status,
                detail=" ".join(part for part in (receipt.status, receipt.detail, receipt.url) if part),
                raw=(receipt.raw or (raw if len(receipts) == 1 else _receipt_raw(receipt)))[:20000],
            )
        )
        if receipt.status == "unsubscribed" and message.customer_id:
            consent = Channel.CONSENT.get(message.channel)
            if consent:
                consent_record(
                    customer_id=message.customer_id,
                    channel=consent,
                    status="unsubscribed",
                    changed_at=when,
                    origin=f"message {message.pk}",
                    explicit=True,
                )
        if message.customer_id and receipt.status in RECEIPT_EVENTS:
            properties = {"channel": message.channel, "account": account.pk, "message": message.pk}
            if receipt.url:
                properties["url"] = receipt.url
            properties.update({key: value for key, value in receipt.data.items() if key not in properties})
            events[(RECEIPT_EVENTS[receipt.status], tuple(sorted(properties.items())))].append(
                message.customer_id
            )
    if changed:  # one statement, not one per receipt; the rows are locked above
        Message.objects.bulk_update(list(changed.values()), sorted(changed_fields))
    MessageLog.objects.bulk_create(logs)
    for (name, properties), customer_ids in events.items():
        system_events_record(
            rows=[(customer_id, name) for customer_id in customer_ids],
            kind="track",
            properties=dict(properties),
            moment=now,
            message_prefix=f"{name}-{secrets.token_hex(6)}",
        )
    return matched


def _receipt_raw(receipt: Receipt) -> str:
    return json.dumps(dataclasses.asdict(receipt), ensure_ascii=False, default=str)


@transaction.atomic
def link_click(*, code: str) -> str | None:
    """Records a click on a tracked link; returns where to send the visitor (None: unknown code)."""
    link = TrackedLink.objects.select_related("message__account").filter(code=code).first()
    if link is None:
        return None
    TrackedLink.objects.filter(pk=link.pk).update(clicks=link.clicks + 1)
    message = link.message
    if message.provider_message_id:
        receipt = Receipt(provider_message_id=message.provider_message_id, status="clicked", url=link.url)
        receipts_apply(account=message.account, receipts=[receipt])
    elif message.customer_id:
        system_events_record(
            rows=[(message.customer_id, "message_clicked")],
            kind="track",
            properties={"channel": message.channel, "message": message.pk, "url": link.url},
            moment=timezone.now(),
            message_prefix=f"message_clicked-{secrets.token_hex(6)}",
        )
    return link.url


def unsubscribe_read(token: str) -> tuple[int, str] | None:
    try:
        data = signing.loads(token, salt=UNSUBSCRIBE_SALT)
        return int(data["c"]), str(data["ch"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None


@transaction.atomic
def unsubscribe_apply(*, customer_id: int, channel: str) -> bool:
    """The customer's own "no" from a link: it wins over any decision on record, however dated.
    Returns whether it is recorded (the page says so only then)."""
    if not Customer.objects.filter(pk=customer_id).exists():
        return False
    customer_id = customer_survivor(customer_id)  # the link may predate a merge: the person is the survivor
    now = timezone.now()
    recorded = consent_record(
        customer_id=customer_id,
        channel=channel,
        status="unsubscribed",
        changed_at=now,
        origin="link",
        explicit=True,
    )
    if not recorded:
        return False
    system_events_record(
        rows=[(customer_id, "Unsubscribed")],
        kind="track",
        properties={"channel": channel, "origin": "unsubscribe link"},
        moment=now,
        message_prefix=f"unsubscribed-{secrets.token_hex(6)}",
    )
    return True
