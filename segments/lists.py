"""Reads for the segment pages: the list, a segment's size history, its latest membership changes,
its members (a page at a time, or all of them as a CSV streamed in chunks), and the vocabulary the
rule builder offers (event names with their properties, traits, tags, segments, roles, consents,
stages), read from bounded samples of recent data, never from a full scan."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from django.db import connection
from django.db.models import F, Func, IntegerField, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from cdp.csvexport import SafeWriter
from cdp.customers import ListPage, list_page
from cdp.models import Customer, CustomerRole, Identity
from cdp.redaction import mask_email, mask_phone, pii_kind, redact
from segments.models import LifecycleStage, MembershipChange, Segment, SegmentMember, Tag
from segments.services import TRAIT_SAMPLE, known_event_names

# The builder's pickers read the latest events and the most recently active customers: enough to
# know what occurs, without reading ten million events.
EVENT_SAMPLE = 20_000
CUSTOMER_SAMPLE = TRAIT_SAMPLE
CONSENT_SAMPLE = 20_000
VALUES_PER_KEY = 12
DEFAULT_CONSENT_CHANNELS = ("sms", "email", "wechat_oa", "wecom", "phone")
HISTORY_DAYS = 365
MEMBERS_PAGE = 50
EXPORT_CHUNK = 5_000


def segment_list() -> QuerySet:
    return Segment.objects.order_by("name", "pk")


# --------------------------------------------------------------------------------------------------
# A segment's page


def size_history(*, segment: Segment, days: int = HISTORY_DAYS) -> list[tuple[str, int]]:
    """The segment's size per day, the last size of each day, over the last ``days`` days (days
    without a change have no point: the size held), ending with today's size."""
    since = timezone.now() - dt.timedelta(days=days)
    rows = (
        MembershipChange.objects.filter(segment=segment, changed_at__gte=since, member_count__isnull=False)
        .annotate(day=TruncDate("changed_at", tzinfo=timezone.get_current_timezone()))
        .order_by("day", "-changed_at", "-id")
        .distinct("day")
        .values_list("day", "member_count")
    )
    points = [(day.isoformat(), count) for day, count in rows]
    today = timezone.localdate().isoformat()
    if segment.refreshed_at and (not points or points[-1][0] != today):
        points.append((today, segment.member_count))
    return points


class _Cardinality(Func):
    function = "cardinality"
    output_field = IntegerField()


class _FirstIds(Func):
    """The first few ids of a membership change's array, without reading the rest into Python."""

    template = "%(expressions)s[1:3]"


@dataclass(frozen=True)
class ChangeRow:
    changed_at: dt.datetime
    entered: int
    exited: int
    member_count: int | None
    entered_customers: list[Customer]
    exited_customers: list[Customer]


def recent_changes(*, segment: Segment, visible: Q, limit: int = 10) -> list[ChangeRow]:
    """The latest membership changes: how many entered and left, the size after, and the first few
    who did (the arrays themselves can hold hundreds of thousands of ids, so they stay in SQL)."""
    rows = list(
        MembershipChange.objects.filter(segment=segment)
        .order_by("-changed_at", "-id")
        .values("changed_at", "member_count")
        .annotate(
            entered_count=_Cardinality(F("entered")),
            exited_count=_Cardinality(F("exited")),
            first_entered=_FirstIds(F("entered"), output_field=MembershipChange._meta.get_field("entered")),
            first_exited=_FirstIds(F("exited"), output_field=MembershipChange._meta.get_field("exited")),
        )[:limit]
    )
    ids = {customer_id for row in rows for customer_id in (*row["first_entered"], *row["first_exited"])}
    customers = Customer.objects.filter(visible).in_bulk(ids)
    return [
        ChangeRow(
            changed_at=row["changed_at"],
            entered=row["entered_count"] or 0,
            exited=row["exited_count"] or 0,
            member_count=row["member_count"],
            entered_customers=[customers[i] for i in row["first_entered"] if i in customers],
            exited_customers=[customers[i] for i in row["first_exited"] if i in customers],
        )
        for row in rows
    ]


def member_page(*, segment: Segment, number, visible: Q) -> ListPage:
    """One page of the members the reader sees (``visible``: a filter through ``customer``), newest
    customers first: the (segment, customer) index answers it without sorting a million rows."""
    members = (
        SegmentMember.objects.filter(visible, segment=segment)
        .select_related("customer")
        .order_by("-customer_id")
    )
    return list_page(members, number=number, size=MEMBERS_PAGE)


def primary_contacts(*, customer_ids: list[int], show_pii: bool) -> dict[int, dict[str, str]]:
    """Each customer's first phone and first email, in one query, masked unless ``show_pii``."""
    rows = (
        Identity.objects.filter(customer_id__in=customer_ids, type__in=("phone", "email"))
        .order_by("customer_id", "type", "first_seen_at", "id")
        .distinct("customer_id", "type")
        .values_list("customer_id", "type", "value")
    )
    contacts: dict[int, dict[str, str]] = defaultdict(dict)
    for customer_id, kind, value in rows:
        if not show_pii:
            value = mask_phone(value) if kind == "phone" else mask_email(value)
        contacts[customer_id][kind] = value
    return contacts


EXPORT_COLUMNS = ("customer_id", "name", "phone", "email", "entered_at")


def members_csv(*, segment: Segment, show_pii: bool, visible: Q, chunk: int = EXPORT_CHUNK) -> Iterator[str]:
    """The members as CSV text, a chunk of rows at a time: each chunk is one keyset query on the
    (segment, customer) index, so no cursor stays open between chunks and memory holds one chunk
    whatever the size of the segment. The columns read back as an upload (``customer_id``)."""
    buffer = io.StringIO()
    writer = SafeWriter(buffer)
    writer.writerow(EXPORT_COLUMNS)
    yield "\ufeff" + buffer.getvalue()  # the BOM makes Excel read UTF-8 (Chinese names)
    after = 0
    while True:
        rows = list(
            SegmentMember.objects.filter(visible, segment=segment, customer_id__gt=after)
            .order_by("customer_id")
            .values_list("customer_id", "customer__name", "entered_at")[:chunk]
        )
        if not rows:
            return
        contacts = primary_contacts(customer_ids=[row[0] for row in rows], show_pii=show_pii)
        buffer.seek(0)
        buffer.truncate()
        for customer_id, name, entered_at in rows:
            contact = contacts.get(customer_id, {})
            writer.writerow(
                [
                    customer_id,
                    name,
                    contact.get("phone", ""),
                    contact.get("email", ""),
                    timezone.localtime(entered_at).isoformat(timespec="seconds"),
                ]
            )
        yield buffer.getvalue()
        after = rows[-1][0]


# --------------------------------------------------------------------------------------------------
# The builder's vocabulary


def event_properties(*, sample: int = EVENT_SAMPLE) -> dict[str, dict[str, list]]:
    """Per event name, the properties the latest ``sample`` events carry, each with its most
    frequent short values (for the pickers)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT recent.name, property.key, property.value
            FROM (SELECT name, properties FROM cdp_event ORDER BY id DESC LIMIT %s) AS recent,
                 LATERAL jsonb_each(CASE WHEN jsonb_typeof(recent.properties) = 'object'
                                         THEN recent.properties ELSE '{}'::jsonb END) AS property
            """,
            [sample],
        )
        return _keys_with_values(((name, key), value) for name, key, value in cursor.fetchall())


def trait_values(*, sample: int = CUSTOMER_SAMPLE) -> dict[str, list]:
    """The most frequent short values of each trait among the most recently active customers."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT trait.key, trait.value
            FROM (SELECT traits FROM cdp_customer WHERE merged_into_id IS NULL
                  ORDER BY last_seen_at DESC NULLS LAST, id DESC LIMIT %s) AS recent,
                 LATERAL jsonb_each(CASE WHEN jsonb_typeof(recent.traits) = 'object'
                                         THEN recent.traits ELSE '{}'::jsonb END) AS trait
            """,
            [sample],
        )
        grouped = _keys_with_values(((None, key), value) for key, value in cursor.fetchall())
    return grouped.get(None, {})


def _keys_with_values(rows) -> dict:
    counts: dict = defaultdict(lambda: defaultdict(Counter))
    for (group, key), raw in rows:
        bucket = counts[group][key]
        value = json.loads(raw) if isinstance(raw, str) else raw  # jsonb arrives as its text
        if (isinstance(value, str) and 0 < len(value) <= 40) or isinstance(value, (int, float)):
            bucket[value] += 1
    return {
        group: {
            key: [value for value, _count in values.most_common(VALUES_PER_KEY)]
            for key, values in sorted(keys.items())
        }
        for group, keys in counts.items()
    }


def consent_channels(*, sample: int = CONSENT_SAMPLE) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT channel"
            " FROM (SELECT channel FROM cdp_consent ORDER BY id DESC LIMIT %s) AS recent",
            [sample],
        )
        return sorted({row[0] for row in cursor.fetchall()} | set(DEFAULT_CONSENT_CHANNELS))


def _offered(key: str, values: list, *, show_pii: bool) -> list:
    """The frequent values a picker offers: none under a phone, email or ID-number key, and any of
    them inside other values masked, for people without ``view_pii``."""
    if show_pii:
        return values
    if pii_kind(key):
        return []
    return [redact(value, show_pii=False) for value in values]


def builder_vocabulary(*, show_pii: bool) -> dict:
    """Everything the rule builder's pickers offer, named as rules name it."""
    properties = event_properties()
    traits = trait_values()  # the same sample of customers rules check trait names against
    names = sorted(known_event_names() | set(properties))
    return {
        "events": [
            {
                "name": name,
                "properties": [
                    {"key": key, "values": _offered(key, values, show_pii=show_pii)}
                    for key, values in properties.get(name, {}).items()
                ],
            }
            for name in names
        ],
        "traits": [
            {"key": key, "values": _offered(key, values, show_pii=show_pii)}
            for key, values in sorted(traits.items())
        ],
        "tags": [
            {"key": key, "name": name}
            for key, name in Tag.objects.order_by("name").values_list("key", "name")
        ],
        "segments": [
            {"key": key, "name": name}
            for key, name in Segment.objects.order_by("name").values_list("key", "name")
        ],
        "roles": [
            {"key": key, "name": label} for key, label in CustomerRole.objects.values_list("key", "label")
        ],
        "consent_channels": consent_channels(),
        "stages": [
            {"key": key, "name": name} for key, name in LifecycleStage.objects.values_list("key", "name")
        ],
    }
