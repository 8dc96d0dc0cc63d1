"""Writes of messaging: the outbox (enqueue), receipts, clicks, unsubscribes, templates.

Accounts are in ``connectors.accounts``, the dispatcher in ``connectors.dispatcher``.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
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
from cdp.services import audit_record
from cdp.sqlvalues import id_array, json_rows
from connectors.dispatcher import dispatch_wake
from connectors.models import (
    ChannelAccount,
    Message,
    MessageLog,
    MessageTemplate,
    TrackedLink,
)
from connectors.protocol import Channel

# Receipts live in their own module; these names stay importable from the services too.
from connectors.receipts import (  # noqa: F401
    UNSUBSCRIBE_SALT,
    callback_store,
    link_click,
    receipts_apply,
    unsubscribe_apply,
    unsubscribe_read,
)
from connectors.templating import TemplateInvalid, body_problems, body_render, variables_context

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


@dataclass(frozen=True)
class Outgoing:
    """One customer's message in ``messages_enqueue_batch``."""

    idempotency_key: str
    customer: Customer
    event_properties: dict
    journey_id: int | None = None
    enrollment_id: int | None = None


@dataclass(frozen=True)
class Enqueued:
    """What the outbox holds for a key: the message's id and where it stands."""

    id: int
    status: str
    reason: str
    delivered_at: dt.datetime | None
    created: bool


def recipients_for(*, account: ChannelAccount, customer_ids: list[int]) -> dict[int, str]:
    """``recipient_for`` for many customers at once (the newest identity of the channel's type)."""
    if account.channel == Channel.WEBHOOK:
        return {customer_id: str(customer_id) for customer_id in customer_ids}
    types = {
        Channel.SMS: ("type = 'phone'", []),
        Channel.CALL: ("type = 'phone'", []),
        Channel.EMAIL: ("type = 'email'", []),
        Channel.WECOM: ("type = 'wecom_external_userid'", []),
        Channel.WECHAT_TEMPLATE: ("type LIKE 'wechat\\_openid%%'", []),
    }
    if account.channel not in types:
        return {}
    condition, params = types[account.channel]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT DISTINCT ON (customer_id) customer_id, value FROM cdp_identity
            WHERE customer_id = ANY(%s::bigint[]) AND {condition}
            ORDER BY customer_id, first_seen_at DESC
            """,  # noqa: S608 (a fixed condition per channel)
            [id_array(customer_ids), *params],
        )
        return dict(cursor.fetchall())


OUTGOING_COLUMNS = "key customer_id recipient content journey_id enrollment_id status reason failed_at detail"


@transaction.atomic
def messages_enqueue_batch(
    *,
    account: ChannelAccount,
    template: MessageTemplate,
    items: list[Outgoing],
    origin: str = "journey",
    node_id: str = "",
) -> dict[str, Enqueued]:
    """``message_enqueue`` for many customers at once, in the caller's transaction: rendered each,
    recipients read in one query, messages and their log lines written in one statement. A key
    already in the outbox keeps its first message. Returns what the outbox holds, by key."""
    now = timezone.now()
    recipients = recipients_for(account=account, customer_ids=[item.customer.pk for item in items])
    rows, links_by_key, details = [], {}, {}
    for item in items:
        prepared = _prepare(
            account=account,
            customer=item.customer,
            template=template,
            body=None,
            event_properties=item.event_properties,
        )
        recipient = recipients.get(item.customer.pk, "")
        status, reason = prepared.status, prepared.reason
        if status == Message.Status.QUEUED and not recipient:
            status, reason = Message.Status.SKIPPED, NO_RECIPIENT[account.channel]
        links: list[tuple[str, str]] = []
        content = _links_rewrite(prepared.content, links)
        if account.channel == Channel.EMAIL:
            content = _email_extras(content, customer_id=item.customer.pk)
        if links:
            links_by_key[item.idempotency_key] = links
        detail = "queued" if status == Message.Status.QUEUED else reason
        if prepared.missing:
            detail += "; missing variables (rendered empty): " + ", ".join(prepared.missing)
        details[item.idempotency_key] = detail
        rows.append(
            (
                item.idempotency_key,
                item.customer.pk,
                recipient,
                content,
                item.journey_id,
                item.enrollment_id,
                status,
                reason,
                now if status == Message.Status.FAILED else None,
                detail,
            )
        )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH r AS (
                SELECT * FROM json_to_recordset(%s::json) AS r(key text, customer_id bigint, recipient text,
                    content jsonb, journey_id bigint, enrollment_id bigint, status text, reason text,
                    failed_at timestamptz, detail text)
            ), new AS (
                INSERT INTO connectors_message (idempotency_key, account_id, channel, customer_id, recipient,
                    template_id, content, origin, journey_id, enrollment_id, node_id, status, reason, due_at,
                    claim, attempts, provider_message_id, provider_answer, created_at, failed_at)
                SELECT key, %s, %s, customer_id, recipient, %s, content, %s, journey_id, enrollment_id, %s,
                       status, reason, %s, '', 0, '', '', %s, failed_at
                FROM r ORDER BY key
                ON CONFLICT (idempotency_key) DO NOTHING
                RETURNING id, idempotency_key, status, reason
            ), logged AS (
                INSERT INTO connectors_messagelog (message_id, at, step, status, detail, raw)
                SELECT new.id, %s, 'queued', new.status, r.detail, ''
                FROM new JOIN r ON r.key = new.idempotency_key
            )
            SELECT id, idempotency_key, status, reason FROM new
            """,
            [
                json_rows(OUTGOING_COLUMNS, rows),
                account.pk,
                account.channel,
                template.pk,
                origin,
                node_id,
                now,
                now,
                now,
            ],
        )
        result = {
            key: Enqueued(id=message_id, status=status, reason=reason, delivered_at=None, created=True)
            for message_id, key, status, reason in cursor.fetchall()
        }
    earlier = [item.idempotency_key for item in items if item.idempotency_key not in result]
    for message_id, key, status, reason, delivered_at in Message.objects.filter(
        idempotency_key__in=earlier
    ).values_list("id", "idempotency_key", "status", "reason", "delivered_at"):
        result[key] = Enqueued(
            id=message_id, status=status, reason=reason, delivered_at=delivered_at, created=False
        )
    TrackedLink.objects.bulk_create(
        [
            TrackedLink(code=code, message_id=result[key].id, url=url)
            for key, links in links_by_key.items()
            if result[key].created
            for code, url in links
        ]
    )
    by_customer = {item.idempotency_key: item.customer.pk for item in items}
    for key, enqueued in result.items():
        if enqueued.created and enqueued.status in {Message.Status.SKIPPED, Message.Status.FAILED}:
            name = "message_skipped" if enqueued.status == Message.Status.SKIPPED else "message_failed"
            system_events_record(
                rows=[(by_customer[key], name)],
                kind="track",
                properties={"channel": account.channel, "account": account.pk, "message": enqueued.id},
                moment=now,
                message_prefix=f"{name}-{enqueued.id}",
            )
    if any(enqueued.created and enqueued.status == Message.Status.QUEUED for enqueued in result.values()):
        transaction.on_commit(lambda: dispatch_wake(account_id=account.pk))
    return result


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
        transaction.on_commit(lambda: dispatch_wake(account_id=account.pk))
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
        transaction.on_commit(lambda: dispatch_wake(account_id=message.account_id))
    else:
        message.status, message.reason = Message.Status.SENT, gettext_noop("Marked as sent by a person.")
        message.sent_at = message.sent_at or now
        detail = "marked sent by a person"
    message.save(update_fields=["status", "reason", "due_at", "sent_at"])
    MessageLog.objects.create(message=message, at=now, step="resolved", status=message.status, detail=detail)
    audit_record(actor=actor, action="message.resolve", target=message, details={"resend": resend})
    return message


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
    try:
        rendered = body_render(channel="__any__", body=body, context=variables_context(customer=None))
    except TemplateInvalid:  # fails without a customer (arithmetic on a missing trait): the preview shows it
        return []
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
