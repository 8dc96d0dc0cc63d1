"""Reads of messaging: message search, a message's life, account summaries, the sandbox outbox."""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from cdp.redaction import mask_phone, redact_fields, redact_text
from connectors.models import ChannelAccount, Message, SandboxDelivery


def message_search(
    *,
    status: str = "",
    channel: str = "",
    account_id: int | None = None,
    customer_id: int | None = None,
    journey_id: int | None = None,
    before_id: int | None = None,
    visible: Q,
) -> QuerySet:
    """Messages, newest first, to the customers ``visible`` keeps (a filter through ``customer``)."""
    messages = (
        Message.objects.filter(visible).select_related("account", "customer", "template").order_by("-id")
    )
    if status:
        messages = messages.filter(status=status)
    if channel:
        messages = messages.filter(channel=channel)
    if account_id:
        messages = messages.filter(account_id=account_id)
    if customer_id:
        messages = messages.filter(customer_id=customer_id)
    if journey_id:
        messages = messages.filter(journey_id=journey_id)
    if before_id:
        messages = messages.filter(id__lt=before_id)
    return messages


def recipient_shown(message: Message, *, show_pii: bool) -> str:
    """The recipient as this reader may see it: phone numbers and emails masked without ``view_pii``."""
    if show_pii or not message.recipient:
        return message.recipient
    if message.channel in {"sms", "call"}:
        return mask_phone(message.recipient)
    return redact_text(message.recipient)


def messages_shown(messages, *, show_pii: bool, manages_channels: bool, life: list | None = None) -> list:
    """Messages (and one message's life) as this reader may see them, changed in memory only: the
    recipient, the content, the provider's answers and the receipts (a receipt's body may name other
    recipients of the same batch) with phones, emails and ID numbers masked without ``view_pii``; a
    webhook's raw answers to admins only."""
    messages = list(messages)
    for message in messages:
        message.recipient = recipient_shown(message, show_pii=show_pii)
        if not provider_answers_shown(message, manages_channels=manages_channels):
            message.provider_answer = ""
            for step in life or []:
                step.raw = ""
    redact_fields(messages, "content", "provider_answer", "reason", show_pii=show_pii)
    redact_fields(life or [], "detail", "raw", show_pii=show_pii)
    return messages


def provider_answers_shown(message: Message, *, manages_channels: bool) -> bool:
    """Whether this reader sees the provider's raw answers: a webhook's come from a server an admin
    chose and may hold whatever it returns, so only admins (``manage_channels``) read them."""
    return manages_channels or message.channel != "webhook"


def message_for_key(*, idempotency_key: str) -> Message | None:
    """The message a step wrote (journeys read its status to take their ``delivered`` or ``failed``
    handle)."""
    return Message.objects.filter(idempotency_key=idempotency_key).first()


def messages_for_keys(*, idempotency_keys: list[str]) -> dict[str, Message]:
    """The messages a batch of steps wrote, by key."""
    return {
        message.idempotency_key: message
        for message in Message.objects.filter(idempotency_key__in=idempotency_keys).only(
            "id", "idempotency_key", "account_id", "status", "reason", "delivered_at"
        )
    }


def message_life(*, message: Message) -> list:
    return list(message.log.order_by("at", "id"))


def in_doubt_count() -> int:
    """How many messages are ``unknown``: people must decide about each (one index range)."""
    return Message.objects.filter(status=Message.Status.UNKNOWN).count()


def _per_account(messages: QuerySet) -> dict[int, int]:
    return dict(messages.order_by().values_list("account_id").annotate(n=Count("id")))


def account_summaries() -> list[ChannelAccount]:
    """Accounts with their counts: each count one index range (sent and failed in the last day,
    queued, in doubt), not a pass over the whole outbox."""
    since = timezone.now() - dt.timedelta(days=1)
    sent = _per_account(Message.objects.filter(sent_at__gte=since))
    failed = _per_account(Message.objects.filter(failed_at__gte=since))
    unknown = _per_account(Message.objects.filter(status=Message.Status.UNKNOWN))
    queued = _per_account(Message.objects.filter(status=Message.Status.QUEUED))
    accounts = list(ChannelAccount.objects.order_by("name", "id"))
    for account in accounts:
        account.sent_day = sent.get(account.pk, 0)
        account.failed_day = failed.get(account.pk, 0)
        account.unknown = unknown.get(account.pk, 0)
        account.queued = queued.get(account.pk, 0)
    return accounts


def sandbox_outbox(*, account_id: int | None = None, limit: int = 100) -> QuerySet:
    deliveries = SandboxDelivery.objects.select_related("account").order_by("-received_at", "-id")
    if account_id:
        deliveries = deliveries.filter(account_id=account_id)
    return deliveries[:limit]


def known_trait_names(*, sample: int = 2000) -> set[str]:
    """Trait names the most recently seen customers have (a sample keeps this fast at any size)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT DISTINCT jsonb_object_keys(traits)
            FROM (SELECT traits FROM cdp_customer WHERE merged_into_id IS NULL
                  ORDER BY last_seen_at DESC NULLS LAST LIMIT %s) recent
            WHERE jsonb_typeof(traits) = 'object'
            """,
            [sample],
        )
        return {row[0] for row in cursor.fetchall()}


def customer_lookup(query: str, *, user):
    """The customer named by an id (``42`` or ``#42``) or by an exact phone, email or user id, if
    ``user``'s roles let them see it (one they do not see is not found, as if absent)."""
    from cdp.customers import customer_by_identifier, customer_resolve
    from cdp.selectors import customer_visible

    query = query.strip()
    digits = query.removeprefix("#")
    if digits.isdigit() and (query.startswith("#") or len(digits) < 10):  # phones are longer
        customer = customer_resolve(customer_id=int(digits))
    else:
        customer = customer_by_identifier(query=query) if query else None
    return customer if customer is not None and customer_visible(user, customer) else None
