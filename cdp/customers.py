"""Reads about customers for the pages and the API: search, the profile, the timeline."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.contrib.postgres.fields import ArrayField
from django.db.models import Func, Prefetch, Q, QuerySet, TextField
from django.utils.translation import gettext

from cdp.identity import decrypt_sensitive, normalise_email, normalise_phone
from cdp.merge import customer_survivor
from cdp.models import Consent, Customer, Event, Identity, Source
from cdp.redaction import mask_phone, redact, redact_under  # noqa: F401 (the one redaction path; readers import it here too)

TIMELINE_PAGE = 50


def reason_translated(properties):
    """Events the product records itself (a send held by the contact policy, ...) carry their reason
    untranslated, with its parameters apart (``reason``, ``reason_params``): shown in the reader's
    language. Any other properties are shown as they came."""
    if not isinstance(properties, dict) or not isinstance(properties.get("reason"), str):
        return properties
    shown = {key: value for key, value in properties.items() if key != "reason_params"}
    params = properties.get("reason_params")
    try:
        shown["reason"] = gettext(properties["reason"]) % params if params else gettext(properties["reason"])
    except (KeyError, TypeError, ValueError):  # a reason from outside that is not a message of ours
        shown["reason"] = properties["reason"]
    return shown


def primary_phones(*, customer_ids: list[int], show_pii: bool) -> dict[int, str]:
    """The first phone of each customer, in one query (for lists)."""
    rows = (
        Identity.objects.filter(customer_id__in=customer_ids, type="phone")
        .order_by("customer_id", "first_seen_at")
        .distinct("customer_id")
        .values_list("customer_id", "value")
    )
    return {customer_id: phone if show_pii else mask_phone(phone) for customer_id, phone in rows}


class RoleKeys(Func):
    """``cdp_role_keys(traits)``: the customer's role keys, as the index ``customer_role_keys`` has them."""

    function = "cdp_role_keys"
    output_field = ArrayField(TextField())


@dataclass
class ListPage:
    """One page of a long list for infinite scrolling: whether more follow is told by reading one
    row past the page, never by counting the whole list (a COUNT over a million customers costs more
    than the page itself)."""

    rows: list
    number: int
    has_next: bool

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def next_page_number(self) -> int:
        return self.number + 1


def list_page(queryset: QuerySet, *, number, size: int) -> ListPage:
    try:
        number = max(1, int(number))
    except (TypeError, ValueError):
        number = 1
    start = (number - 1) * size
    rows = list(queryset[start : start + size + 1])
    return ListPage(rows=rows[:size], number=number, has_next=len(rows) > size)


def customer_search(*, query: str = "", channel: str = "", role: str = "") -> QuerySet:
    """Active customers matching a phone, email, WeChat or user id exactly, or a name prefix."""
    customers = Customer.objects.filter(merged_into__isnull=True)
    query = query.strip()
    if query:
        candidates = {query}
        for normalised in (normalise_phone(query), normalise_email(query)):
            if normalised:
                candidates.add(normalised)
        by_identity = Identity.objects.filter(value__in=candidates).values("customer_id")
        by_name = Customer.objects.filter(merged_into__isnull=True, name__istartswith=query).values("id")
        customers = customers.filter(pk__in=by_identity.union(by_name))
    if channel:
        customers = customers.filter(
            pk__in=Identity.objects.filter(source__kind=channel).values("customer_id")
        )
    if role:
        # A person can hold several roles ("supplier buyer", or a list): matched by the role index.
        customers = customers.filter(traits__has_key="role").annotate(role_keys=RoleKeys("traits"))
        customers = customers.filter(role_keys__contains=[role.strip().lower()])
    return customers.order_by("-last_seen_at", "-id")


def customer_by_identifier(*, query: str, excluding: Customer | None = None) -> Customer | None:
    """The one other customer an exact identifier or ``#id`` names; None when none or several do
    (merging by a name would pick an arbitrary namesake)."""
    query = query.strip()
    if query.startswith("#") and query[1:].isdigit():
        return customer_resolve(customer_id=int(query[1:]))
    candidates = {query} | {value for value in (normalise_phone(query), normalise_email(query)) if value}
    owners = set(Identity.objects.filter(value__in=candidates).values_list("customer_id", flat=True))
    if excluding is not None:
        owners.discard(excluding.pk)
    return customer_resolve(customer_id=owners.pop()) if len(owners) == 1 else None


def customer_resolve(*, customer_id: int) -> Customer | None:
    """The customer, or the one it was merged into (links to merged customers keep working)."""
    return Customer.objects.filter(pk=customer_survivor(customer_id)).first()


@dataclass(frozen=True)
class IdentityRow:
    type: str
    value: str
    source: str
    first_seen_at: dt.datetime


IDENTITY_ORDER = ("type", "first_seen_at")


def customer_identities(*, customer: Customer, show_pii: bool) -> list[IdentityRow]:
    return identity_rows(
        identities=customer.identities.select_related("source").order_by(*IDENTITY_ORDER), show_pii=show_pii
    )


def identities_prefetch(lookup: str) -> Prefetch:
    """For lists of customers: their identities (and sources) in one query, in display order."""
    return Prefetch(lookup, queryset=Identity.objects.select_related("source").order_by(*IDENTITY_ORDER))


def identity_rows(*, identities, show_pii: bool) -> list[IdentityRow]:
    """Identities as shown to people: phones and emails masked and ID numbers hidden unless they may
    see them."""
    rows = []
    for identity in identities:
        if identity.type == "id_number":
            value = "••••••••" if not show_pii else _decrypted(identity)
        else:
            value = redact_under(identity.type, identity.value, show_pii=show_pii)
        rows.append(
            IdentityRow(
                type=identity.type,
                value=value,
                source=identity.source.name if identity.source else "",
                first_seen_at=identity.first_seen_at,
            )
        )
    return rows


def _decrypted(identity: Identity) -> str:
    return decrypt_sensitive(identity.encrypted_value) if identity.encrypted_value else "••••••••"


def customer_primary_phone(*, customer: Customer, show_pii: bool) -> str:
    return primary_phones(customer_ids=[customer.pk], show_pii=show_pii).get(customer.pk, "")


def customer_consents(*, customer: Customer) -> list[Consent]:
    return list(customer.consents.order_by("channel"))


def customer_timeline(
    *,
    customer: Customer,
    channel: str = "",
    kind: str = "",
    before: tuple[dt.datetime, int] | None = None,
    after_id: int | None = None,
) -> list[Event]:
    """One page of the customer's events, newest first, after ``before``: the last shown (time, id)."""
    events = Event.objects.filter(customer=customer).select_related("source")
    if channel:
        events = events.filter(channel=channel)
    if kind:
        events = events.filter(kind=kind)
    if after_id is not None:  # live updates: whatever arrived since, whatever its event time
        events = events.filter(pk__gt=after_id)
    if before is not None:
        moment, event_id = before
        events = events.filter(Q(timestamp__lt=moment) | Q(timestamp=moment, pk__lt=event_id))
    return list(events.order_by("-timestamp", "-id")[:TIMELINE_PAGE])


def customer_stats(*, customer: Customer) -> list:
    return list(customer.event_stats.order_by("-count")[:12])


def source_list() -> QuerySet:
    return Source.objects.order_by("name")
