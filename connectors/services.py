"""Writes of messaging: the outbox (enqueue), receipts, clicks, unsubscribes, templates.

Accounts are in ``connectors.accounts``, the dispatcher in ``connectors.dispatcher``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from cdp.ingest import system_events_record
from cdp.models import Customer, Identity
from cdp.services import audit_record, consent_record
from cdp.sqlvalues import json_rows
from connectors.dispatcher import dispatch_wake
from connectors.models import (
    ChannelAccount,
    InboundCallback,
    Message,
    MessageLog,
    MessageTemplate,
    TrackedLink,
)
from connectors.protocol import Channel, Receipt
from connectors.templating import TemplateInvalid, body_problems, body_render, variables_context

UNSUBSCRIBE_SALT = "connectors.unsubscribe"
LINK = re.compile(r"""https?://[^\s<>"')\]]+""")


# -- recipients --------------------------------------------------------------------------------


def recipient_for(*, account: ChannelAccount, customer: Customer | None) -> str:
    """The customer's address on the account's channel ('' when they have none)."""
    if customer is None:
        return ""
    if account.channel == Channel.WEBHOOK:
        return str(customer.pk)
    identities = Identity.objects.filter(customer=customer)
    if account.channel in {Channel.SMS, Channel.CALL}:
        identities = identities.filter(type="phone")
    elif account.channel == Channel.EMAIL:
        identities = identities.filter(type="email")
    elif account.channel == Channel.WECOM:
        identities = identities.filter(type="wecom_external_userid")
    elif account.channel == Channel.WECHAT_TEMPLATE:
        appid = account.settings.get("appid", "")
        identities = identities.filter(Q(type=f"wechat_openid:{appid}") | Q(type__startswith="wechat_openid"))
        identities = identities.order_by("-type")  # this app's openid first when both exist
    value = identities.order_by("-first_seen_at").values_list("value", flat=True).first()
    return value or ""


NO_RECIPIENT = {
    Channel.SMS: gettext_noop("The customer has no phone number."),
    Channel.CALL: gettext_noop("The customer has no phone number."),
    Channel.EMAIL: gettext_noop("The customer has no email address."),
    Channel.WECOM: gettext_noop("The customer is not a WeCom contact."),
    Channel.WECHAT_TEMPLATE: gettext_noop("The customer has no WeChat openid for this account."),
    Channel.WEBHOOK: gettext_noop("No customer."),
}


# -- links and unsubscribe ---------------------------------------------------------------------


def unsubscribe_url(*, customer_id: int, channel: str) -> str:
    token = signing.dumps({"c": customer_id, "ch": channel}, salt=UNSUBSCRIBE_SALT, compress=True)
    return settings.SITE_URL + reverse("connector_unsubscribe", kwargs={"token": token})


def _links_rewrite(content: dict, links: list[tuple[str, str]]) -> dict:
    """Replaces every http(s) link in the texts with a tracked short link; ``links`` collects them."""

    def replace(match: re.Match) -> str:
        code = secrets.token_urlsafe(9)[:12]
        links.append((code, match.group(0)))
        return settings.SITE_URL + reverse("connector_link", kwargs={"code": code})

    rewritten = {}
    for name, value in content.items():
        if name in {"text", "html", "url"} and isinstance(value, str):
            rewritten[name] = LINK.sub(replace, value)
        else:
            rewritten[name] = value
    return rewritten


def _email_extras(content: dict, *, customer_id: int | None) -> dict:
    if customer_id is None:
        return content
    url = unsubscribe_url(customer_id=customer_id, channel="email")
    content = dict(content)
    footer = _("Unsubscribe: %(url)s") % {"url": url}
    if content.get("text"):
        content["text"] = f"{content['text']}\n\n{footer}"
    if content.get("html"):
        link = f'<a href="{url}">{_("Unsubscribe")}</a>'
        content["html"] = f'{content["html"]}<p style="font-size:12px;color:#64748b">{link}</p>'
    content["headers"] = {
        "List-Unsubscribe": f"<{url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    return content


# -- the outbox --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    content: dict
    status: str = Message.Status.QUEUED
    reason: str = ""
    missing: tuple[str, ...] = ()


def _prepare(*, account, customer, template, body, event_properties) -> Prepared:
    source = template.body if template is not None else (body or {})
    if template is not None and template.channel != account.channel:
        return Prepared({}, Message.Status.FAILED, gettext_noop("The template is for another channel."))
    try:
        rendered = body_render(
            channel=account.channel,
            body=source,
            context=variables_context(customer=customer, event_properties=event_properties),
        )
    except TemplateInvalid as error:
        problems = "; ".join(f"{name}: {problem}" for name, problem in error.problems.items())
        return Prepared({}, Message.Status.FAILED, problems)
    return Prepared(rendered.content, missing=tuple(rendered.missing))


@transaction.atomic
def message_enqueue(
    *,
    account: ChannelAccount,
    customer: Customer | None,
    idempotency_key: str,
    template: MessageTemplate | None = None,
    body: dict | None = None,
    event_properties: dict | None = None,
    origin: str = "api",
    journey_id: int | None = None,
    enrollment_id: int | None = None,
    node_id: str = "",
    actor=None,
    due_at: dt.datetime | None = None,
) -> tuple[Message, bool]:
    """Writes the message in the caller's transaction (for journeys: with the step that caused it);
    the dispatcher sends it after the commit. The same idempotency key returns the first message."""
    existing = Message.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return existing, False
    prepared = _prepare(
        account=account, customer=customer, template=template, body=body, event_properties=event_properties
    )
    recipient = recipient_for(account=account, customer=customer)
    status, reason = prepared.status, prepared.reason
    if status == Message.Status.QUEUED and not recipient:
        status, reason = Message.Status.SKIPPED, NO_RECIPIENT[account.channel]
    links: list[tuple[str, str]] = []
    content = _links_rewrite(prepared.content, links)
    if account.channel == Channel.EMAIL:
        content = _email_extras(content, customer_id=customer.pk if customer else None)
    now = timezone.now()
    try:
        with transaction.atomic():
            message = Message.objects.create(
                idempotency_key=idempotency_key,
                account=account,
                channel=account.channel,
                customer=customer,
                recipient=recipient,
                template=template,
                content=content,
                origin=origin,
                journey_id=journey_id,
                enrollment_id=enrollment_id,
                node_id=node_id,
                status=status,
                reason=reason,
                due_at=due_at or now,
                created_by=actor if actor is not None and actor.is_authenticated else None,
                failed_at=now if status == Message.Status.FAILED else None,
            )
    except IntegrityError:  # the same key written meanwhile by another transaction
        return Message.objects.get(idempotency_key=idempotency_key), False
    TrackedLink.objects.bulk_create([TrackedLink(code=code, message=message, url=url) for code, url in links])
    detail = "queued" if status == Message.Status.QUEUED else reason
    if prepared.missing:
        detail += "; missing variables (rendered empty): " + ", ".join(prepared.missing)
    MessageLog.objects.create(message=message, at=now, step="queued", status=status, detail=detail)
    if status in {Message.Status.SKIPPED, Message.Status.FAILED} and customer is not None:
        name = "message_skipped" if status == Message.Status.SKIPPED else "message_failed"
        system_events_record(
            rows=[(customer.pk, name)],
            kind="track",
            properties={"channel": account.channel, "account": account.pk, "message": message.pk},
            moment=now,
            message_prefix=f"{name}-{message.pk}",
        )
    if status == Message.Status.QUEUED:
        transaction.on_commit(lambda: dispatch_wake(account_id=account.pk))
    return message, True


def messages_enqueue_many(
    *, account: ChannelAccount, items: list[tuple[str, int | None, str, dict]], origin: str = "api"
) -> int:
    """Many already rendered messages at once: ``(idempotency key, customer id, recipient, content)``.
    Keys already in the outbox are left as they are. Returns how many were new."""
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            WITH new AS (
                INSERT INTO connectors_message (idempotency_key, account_id, channel, customer_id, recipient,
                    content, origin, node_id, status, reason, due_at, claim, attempts, provider_message_id,
                    provider_answer, created_at)
                SELECT key, %s, %s, customer_id, recipient, content, %s, '', 'queued', '', %s, '', 0,
                       '', '', %s
                FROM json_to_recordset(%s::json)
                     AS r(key text, customer_id bigint, recipient text, content jsonb)
                ON CONFLICT (idempotency_key) DO NOTHING
                RETURNING id
            )
            INSERT INTO connectors_messagelog (message_id, at, step, status, detail, raw)
            SELECT id, %s, 'queued', 'queued', 'queued', '' FROM new
            RETURNING message_id
            """,
            [
                account.pk,
                account.channel,
                origin,
                now,
                now,
                json_rows("key customer_id recipient content", items),
                now,
            ],
        )
        created = len(cursor.fetchall())
        transaction.on_commit(lambda: dispatch_wake(account_id=account.pk, force=True))
    return created


@transaction.atomic
def message_resolve_unknown(*, message: Message, resend: bool, actor) -> Message:
    """A person decides about a message left in doubt: mark it sent as it is, or send it again
    (with the same idempotency key, which a provider honouring keys deduplicates)."""
    message = Message.objects.select_for_update().get(pk=message.pk)
    if message.status != Message.Status.UNKNOWN:
        raise ValidationError({"status": [_("Only a message in doubt can be resolved.")]})
    now = timezone.now()
    if resend:
        message.status, message.reason, message.due_at = Message.Status.QUEUED, "", now
        detail = "resent by a person"
        transaction.on_commit(lambda: dispatch_wake(account_id=message.account_id, force=True))
    else:
        message.status, message.reason = Message.Status.SENT, gettext_noop("Marked as sent by a person.")
        message.sent_at = message.sent_at or now
        detail = "marked sent by a person"
    message.save(update_fields=["status", "reason", "due_at", "sent_at"])
    MessageLog.objects.create(message=message, at=now, step="resolved", status=message.status, detail=detail)
    audit_record(actor=actor, action="message.resolve", target=message, details={"resend": resend})
    return message


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
    """Stores the callback raw; returns None when the same body was already accepted (a replay)."""
    body_hash = hashlib.sha256(body).hexdigest()
    try:
        with transaction.atomic():
            return InboundCallback.objects.create(
                account=account,
                body_hash=body_hash,
                body=body.decode("utf-8", "replace").replace("\x00", "\\x00"),
                headers=headers,
                accepted=accepted,
                problem=problem[:2000],
            )
    except IntegrityError:
        return None


@transaction.atomic
def receipts_apply(*, account: ChannelAccount, receipts: list[Receipt], raw: str = "") -> int:
    """Applies receipts to their messages (by the provider's id) and records each as an event on the
    customer's timeline. Returns how many matched a message."""
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
            message.save(update_fields=sorted(set(fields)))
        logs.append(
            MessageLog(
                message=message,
                at=now,
                step="receipt",
                status=message.status,
                detail=" ".join(part for part in (receipt.status, receipt.detail, receipt.url) if part),
                raw=raw[:20000],
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
                )
        if message.customer_id and receipt.status in RECEIPT_EVENTS:
            properties = {"channel": message.channel, "account": account.pk, "message": message.pk}
            if receipt.url:
                properties["url"] = receipt.url
            properties.update({key: value for key, value in receipt.data.items() if key not in properties})
            events[(RECEIPT_EVENTS[receipt.status], tuple(sorted(properties.items())))].append(
                message.customer_id
            )
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
    if not Customer.objects.filter(pk=customer_id).exists():
        return False
    now = timezone.now()
    consent_record(
        customer_id=customer_id, channel=channel, status="unsubscribed", changed_at=now, origin="link"
    )
    system_events_record(
        rows=[(customer_id, "Unsubscribed")],
        kind="track",
        properties={"channel": channel, "origin": "unsubscribe link"},
        moment=now,
        message_prefix=f"unsubscribed-{secrets.token_hex(6)}",
    )
    return True


# -- templates ---------------------------------------------------------------------------------


def _template_checked(*, key: str, name: str, channel: str, body: dict) -> None:
    problems = body_problems(channel=channel, body=body)
    if not re.fullmatch(r"[-a-zA-Z0-9_]+", key or ""):
        problems["key"] = _("Use letters, digits, - and _ only.")
    if not name.strip():
        problems["name"] = _("Give the template a name.")
    if problems:
        raise ValidationError({field: [problem] for field, problem in problems.items()})


def template_unknown_variables(*, body: dict, known_traits: set[str]) -> list[str]:
    """Trait variables no customer has (``traits.x`` / ``customer.x``): reported before saving."""
    rendered = body_render(channel="__any__", body=body, context=variables_context(customer=None))
    unknown = []
    for variable in rendered.missing:
        root, _dot, rest = variable.partition(".")
        trait = rest.split(".")[0]
        if root in {"traits", "customer"} and trait and trait not in known_traits:
            unknown.append(variable)
    return unknown


@transaction.atomic
def template_save(
    *,
    key: str,
    name: str,
    channel: str,
    body: dict,
    known_traits: set[str],
    template: MessageTemplate | None = None,
    allow_unknown: bool = False,
    actor=None,
) -> MessageTemplate:
    """Refuses a template with problems, by field; also one using traits no customer has, unless
    ``allow_unknown`` (the marketer saw the list and confirmed)."""
    _template_checked(key=key, name=name, channel=channel, body=body)
    unknown = template_unknown_variables(body=body, known_traits=known_traits)
    if unknown and not allow_unknown:
        raise ValidationError(
            {
                "body": [
                    _("No customer has these variables: %(names)s. Check the spelling, or save anyway.")
                    % {"names": ", ".join(unknown)}
                ]
            }
        )
    if template is None:
        if MessageTemplate.objects.filter(key=key).exists():
            raise ValidationError({"key": [_("A template with this key exists.")]})
        template = MessageTemplate(key=key)
    template.name, template.channel, template.body = name.strip(), channel, body
    template.save()
    audit_record(actor=actor, action="message_template.save", target=template, details={"channel": channel})
    return template
