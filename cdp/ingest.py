"""From accepted tracking requests to customers, events and rollups.

``inbox_store`` commits a request's events as one ``IngestBatch`` row before the API answers 200.
``batches_process`` claims pending batches (``FOR UPDATE SKIP LOCKED``, so any number of workers
share them), several requests at a time, and in one transaction for the group: drops messageIds
seen before, resolves identities (creating and merging customers), stores the events, updates
traits and rollups. Set-based statements over a group of requests cost little more than over one,
which is what makes ingestion fast. A group that fails is redone one batch at a time, so one bad
request holds up no other. A worker that dies mid-group leaves its batches pending, and the next
claim redoes them from the start.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Count, F, Q, Sum, TextField
from django.db.models.functions import Cast
from django.utils import timezone
from psycopg.types.json import Jsonb

from cdp import json_codec
from cdp.identity import (
    TRAIT_IDENTIFIERS,
    NormalisedIdentity,
    id_numbers_hashed,
    identities_of,
    identity_type_of,
)
from cdp.merge import MergeConflict, MergeRetry, customer_survivor, customers_merge_many, review_open
from cdp.models import Consent, Customer, Event, Identity, IngestBatch, Source
from cdp.realtime import publish_customers_changed
from cdp.services import FUTURE_SKEW, audit_record, consent_record, internal_source
from cdp.signals import customers_changed
from cdp.sqlvalues import id_array, json_rows

log = logging.getLogger(__name__)


AMOUNT_PROPERTIES = ("revenue", "total", "amount", "value")
MAX_ATTEMPTS = 10
# Requests processed in one transaction: large enough to amortise each statement (and a group's
# merges, a few dozen statements however many) over thousands of events, small enough that a group
# commits well within the 2-second freshness target (8,000 events take about 0.6 s to write). A worker
# takes what is pending, so groups are this large only while a backlog drains.
GROUP_BATCHES = 80


# A process wakes the ingest workers at most this often (seconds): a worker takes everything pending,
# so one wake serves every request committed until it looks. A request that sends none is covered
# by the wake before it: that task looks once more when the interval has passed (see ``settle_until``).
WAKE_INTERVAL = 0.1
_last_wake = {"at": 0.0}


def _wake_workers() -> None:
    from cdp.tasks import ingest_batches

    now = time.time()
    if now - _last_wake["at"] < WAKE_INTERVAL:
        return
    _last_wake["at"] = now
    ingest_batches.delay(sent_at=now)


def inbox_store(*, source: Source, events: list[dict], enqueue: bool = True) -> IngestBatch:
    """Commits the accepted events; the workers are woken once the commit is done (unless the caller
    processes the batch itself)."""
    batch = IngestBatch(source=source, received_at=timezone.now(), events=events, event_count=len(events))
    # One statement, atomic by itself: outside a transaction it commits at once (one round trip on
    # the API's hot path); inside the caller's, it commits with it. Not through the model: the JSON
    # is encoded faster here.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO cdp_ingestbatch (source_id, received_at, events, event_count, attempts, error)
            VALUES (%s, %s, %s::json, %s, 0, '') RETURNING id
            """,
            [source.pk, batch.received_at, json_codec.dumps_text(events), batch.event_count],
        )
        batch.pk = cursor.fetchone()[0]
    if enqueue:
        transaction.on_commit(_wake_workers, robust=True)  # at once when there is no transaction
    return batch


@dataclass
class Incoming:
    message: dict
    source: Source
    received_at: dt.datetime
    identities: list[NormalisedIdentity]
    timestamp: dt.datetime
    local_day: dt.date  # the day and hour of the week in the project's time zone, for the rollups
    hour_of_week: int
    amount: Decimal | None = None
    customer_id: int | None = None
    traits: dict = field(default_factory=dict)


def _amount(properties: dict) -> Decimal | None:
    for key in AMOUNT_PROPERTIES:
        value = properties.get(key)
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            try:
                amount = Decimal(str(value))
            except InvalidOperation:
                continue
            if amount.is_finite() and abs(amount) < Decimal("1e12"):
                return amount.quantize(Decimal("0.01"))
    return None


# Regulated identifiers live hashed and encrypted in identities, never in clear among the traits.
SENSITIVE_TRAITS = frozenset({"id_number", "idNumber"})


def _traits_of(message: dict, unverified: frozenset[str] = frozenset()) -> dict:
    """The traits an event sets. Identifiers its source may not assert (``unverified``) are kept as
    ``unverified_<type>`` (``unverified_phone``), never as the trait staff and templates read; an ID
    number is kept nowhere in clear."""
    traits = (
        message.get("traits")
        if message["kind"] == "identify"
        else (message.get("context") or {}).get("traits")
    )
    if not isinstance(traits, dict):
        traits = {}
    if not unverified:
        return {key: value for key, value in traits.items() if key not in SENSITIVE_TRAITS}
    kept = {}
    for key, value in traits.items():
        identity_type = TRAIT_IDENTIFIERS.get(key)
        if key in SENSITIVE_TRAITS:
            continue
        if identity_type in unverified:
            kept[f"unverified_{identity_type}"] = value
        else:
            kept[key] = value
    if message["kind"] == "identify" and "user_id" in unverified and message.get("userId") is not None:
        kept["unverified_user_id"] = message["userId"]
    return kept


def _new_message_ids(keys: list[tuple[int, str]]) -> set[tuple[int, str]]:
    """Records the (source, messageId) pairs; returns those never seen before (here or elsewhere)."""
    if not keys:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO cdp_eventkey (source_id, message_id)
            SELECT source, message FROM json_to_recordset(%s::json) AS new(source bigint, message text)
            ON CONFLICT (source_id, message_id) DO NOTHING
            RETURNING source_id, message_id
            """,
            [json_rows("source message", keys)],
        )
        return {(source_id, message_id) for source_id, message_id in cursor.fetchall()}


def _conflict_reason(item: Incoming) -> str:
    shared = ", ".join(f"{identity.type}" for identity in item.identities if not identity.encrypted_value)
    return f"an event shares {shared} with both, but merging would break an identity rule"


@dataclass
class NewCustomer:
    """A customer first seen in this group: its id is taken from the sequence at once, its row is
    written once at the end with its traits (or earlier, if a merge or a review needs it)."""

    id: int
    first_seen_at: dt.datetime
    written: bool = False


class _Resolver:
    """Maps each incoming event to a customer, creating customers and merging them as identities demand."""

    def __init__(self, now: dt.datetime):
        self.now = now
        self.owner: dict[tuple[str, str], int] = {}  # identity key -> customer id
        self.held: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        # identity key -> (identity, customer id, source id)
        self.new_identities: dict[tuple[str, str], tuple[NormalisedIdentity, int, int]] = {}
        self.merged_into: dict[int, int] = {}  # customers merged away while resolving this group
        self.stored_merges: list[int] = []  # of those, the ones whose rows are stored (merges_apply)
        self.new_customers: dict[int, NewCustomer] = {}
        self._free_ids: list[int] = []

    def load(self, incoming: list[Incoming]) -> None:
        keys = {identity.key for item in incoming for identity in item.identities}
        if not keys:
            return
        with connection.cursor() as cursor:
            # One index lookup per identifier, flat however big the table.
            cursor.execute(
                """
                SELECT identity.type, identity.value, identity.customer_id
                FROM json_to_recordset(%s::json) AS wanted(type text, value text)
                JOIN cdp_identity AS identity
                    ON identity.type = wanted.type AND identity.value = wanted.value
                """,
                [json_rows("type value", keys)],
            )
            for identity_type, value, customer_id in cursor.fetchall():
                self.owner[(identity_type, value)] = customer_id
        self._load_held(set(self.owner.values()))

    def _load_held(self, customer_ids: set[int]) -> None:
        """The values of limited types (max per customer) the matched customers already hold."""
        if not customer_ids:
            return
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT customer_id, type, value FROM cdp_identity WHERE customer_id = ANY(%s::bigint[])",
                [id_array(customer_ids)],
            )
            rows = cursor.fetchall()
        for customer_id, identity_type, value in rows:
            if identity_type_of(identity_type).max_per_customer is not None:
                self.held[customer_id][identity_type].add(value)

    def _fits(self, customer_id: int, identity: NormalisedIdentity) -> bool:
        limit = identity_type_of(identity.type).max_per_customer
        values = self.held[customer_id][identity.type]
        return limit is None or identity.value in values or len(values) < limit

    def _can_merge(self, survivor: int, merged: int) -> bool:
        for identity_type, values in self.held[merged].items():
            limit = identity_type_of(identity_type).max_per_customer
            if limit is not None and len(values | self.held[survivor][identity_type]) > limit:
                return False
        return True

    def _attach(self, customer_id: int, identity: NormalisedIdentity, source_id: int) -> None:
        self.owner[identity.key] = customer_id
        self.new_identities[identity.key] = (identity, customer_id, source_id)
        if identity_type_of(identity.type).max_per_customer is not None:
            self.held[customer_id][identity.type].add(identity.value)

    def _remap(self, merged: int, survivor: int) -> None:
        self.merged_into[merged] = survivor
        for key, owner in self.owner.items():
            if owner == merged:
                self.owner[key] = survivor
        for key, (identity, owner, source_id) in self.new_identities.items():
            if owner == merged:
                self.new_identities[key] = (identity, survivor, source_id)
        for identity_type, values in self.held.pop(merged, {}).items():
            self.held[survivor][identity_type] |= values

    def _new_customer(self, item: Incoming) -> int:
        if not self._free_ids:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, 64)",
                    [Customer._meta.db_table],
                )
                self._free_ids = [row[0] for row in reversed(cursor.fetchall())]
        customer_id = self._free_ids.pop()
        self.new_customers[customer_id] = NewCustomer(customer_id, item.timestamp)
        return customer_id

    def write_new_customers(self) -> None:
        """Writes the rows of the new customers not written yet (merges and reviews need them)."""
        unwritten = [customer for customer in self.new_customers.values() if not customer.written]
        if not unwritten:
            return
        with connection.cursor() as cursor:
            _customers_insert(
                cursor, [(c.id, c.first_seen_at, c.first_seen_at, "", {}, {}) for c in unwritten], self.now
            )
        for customer in unwritten:
            customer.written = True

    def _unwritten(self, customer_id: int) -> bool:
        new = self.new_customers.get(customer_id)
        return new is not None and not new.written

    def _merge_order(self, first: int, second: int) -> tuple[int, int]:
        """(survivor, merged): the older customer survives; a customer not yet written never
        survives one that is, so that merging it costs nothing."""
        survivor, merged = sorted((first, second))
        if self._unwritten(survivor) and not self._unwritten(merged):
            survivor, merged = merged, survivor
        return survivor, merged

    def _review(self, first_id: int, second_id: int, reason: str) -> None:
        self.write_new_customers()
        review_open(first_id=first_id, second_id=second_id, reason=reason)

    def _contradicts(self, customer_id: int, ranked: list[NormalisedIdentity]) -> bool:
        """Whether the event carries a new identifier, stronger than the one that matched, that the
        customer may not hold (a second phone where one is allowed): then it is someone else."""
        matched = next(identity for identity in ranked if self.owner.get(identity.key) == customer_id)
        matched_priority = identity_type_of(matched.type).priority
        return any(
            identity.key not in self.owner
            and identity_type_of(identity.type).priority > matched_priority
            and not self._fits(customer_id, identity)
            for identity in ranked
        )

    def resolve(self, item: Incoming) -> None:
        owners = {self.owner.get(identity.key) for identity in item.identities}
        if len(owners) == 1 and None not in owners:  # the usual case: a known customer, nothing new
            item.customer_id = owners.pop()
            return
        ranked = sorted(item.identities, key=lambda identity: -identity_type_of(identity.type).priority)
        owners = []
        for identity in ranked:
            owner = self.owner.get(identity.key)
            if owner is not None and owner not in owners:
                owners.append(owner)
        if not owners:
            customer_id = self._new_customer(item)
        elif len(owners) == 1 and self._contradicts(owners[0], ranked):
            customer_id = self._new_customer(item)
            self._review(owners[0], customer_id, _conflict_reason(item))
        else:
            customer_id = owners[0]  # the customer named by the strongest identity
            for other in owners[1:]:
                survivor, merged = self._merge_order(customer_id, other)
                if not self._can_merge(survivor, merged):
                    self._review(survivor, merged, _conflict_reason(item))
                    continue
                if self._unwritten(merged):
                    # First seen in this very group: nothing of it is stored yet, so nothing moves.
                    del self.new_customers[merged]
                    self._remap(merged, survivor)
                    customer_id = survivor
                    continue
                # Both are stored (an unwritten customer never survives a written one): their rows
                # move in merges_apply, together with the group's other merges.
                self.stored_merges.append(merged)
                self._remap(merged, survivor)
                customer_id = survivor
        for identity in ranked:
            if identity.key not in self.owner and self._fits(customer_id, identity):
                self._attach(customer_id, identity, item.source.pk)
        item.customer_id = customer_id

    def merges_apply(self) -> None:
        """The group's merges of stored customers, in one go, each into its final survivor. The rules
        were checked here against identities read under the writer lock with the customers locked,
        so a conflict now means that view went stale: the group starts over (MergeRetry)."""
        if not self.stored_merges:
            return
        pairs = [(self.survivor_of(merged), merged) for merged in self.stored_merges]
        try:
            customers_merge_many(pairs=pairs, reason="identity", actor=None)
        except MergeConflict as conflict:
            raise MergeRetry(str(conflict)) from conflict

    def survivor_of(self, customer_id: int) -> int:
        """Where an earlier event of the group must go if a later one merged its customer away."""
        while customer_id in self.merged_into:
            customer_id = self.merged_into[customer_id]
        return customer_id

    def save_identities(self, cursor) -> None:
        if not self.new_identities:
            return
        # A concurrent group that took one of these identities first makes this group start over.
        cursor.execute(
            """
            INSERT INTO cdp_identity (customer_id, type, value, encrypted_value, source_id, first_seen_at)
            SELECT customer_id, type, value, encrypted_value, source_id, %s
            FROM json_to_recordset(%s::json)
                AS new(customer_id bigint, type text, value text, encrypted_value text, source_id bigint)
            """,
            [
                self.now,
                json_rows(
                    "customer_id type value encrypted_value source_id",
                    (
                        (customer_id, identity.type, identity.value, identity.encrypted_value, source_id)
                        for identity, customer_id, source_id in self.new_identities.values()
                    ),
                ),
            ],
        )


def _display_name(traits: dict, current: str) -> str:
    name = traits.get("name") or " ".join(
        str(traits[part]) for part in ("lastName", "firstName") if traits.get(part)
    )
    return str(name)[:200] if name else current


def _customers_insert(
    cursor, rows: list[tuple[int, dt.datetime, dt.datetime, str, dict, dict]], now: dt.datetime
) -> None:
    """New customers in one statement: (id, first seen, last seen, name, traits, when each changed)."""
    cursor.execute(
        """
        INSERT INTO cdp_customer (id, first_seen_at, last_seen_at, name, traits, traits_updated_at,
                                  created_at, updated_at)
        SELECT id, first_at, last_at, name, traits, stamps, %s, %s
        FROM json_to_recordset(%s::json)
            AS new(id bigint, first_at timestamptz, last_at timestamptz, name text, traits jsonb,
                   stamps jsonb)
        """,
        [now, now, json_rows("id first_at last_at name traits stamps", rows)],
    )


def _latest_traits(items: list[Incoming]) -> dict[int, dict[str, tuple[str, object]]]:
    """Per customer and trait the newest value, judged by event time (so a late event never
    overwrites a newer one): {customer: {trait: (ISO time, value)}}."""
    latest: dict[int, dict[str, tuple[str, object]]] = defaultdict(dict)
    for item in items:
        if not item.traits:
            continue
        stamp = item.timestamp.isoformat()
        for key, value in item.traits.items():
            current = latest[item.customer_id].get(key)
            if current is None or current[0] <= stamp:
                latest[item.customer_id][key] = (stamp, value)
    return latest


def _write_customers(cursor, resolver: _Resolver, items: list[Incoming]) -> None:
    """Traits, name and first/last seen: new customers in one INSERT, the others in one UPDATE."""
    seen: dict[int, tuple[dt.datetime, dt.datetime]] = {}
    for item in items:
        first, last = seen.get(item.customer_id, (item.timestamp, item.timestamp))
        seen[item.customer_id] = (min(first, item.timestamp), max(last, item.timestamp))
    latest = _latest_traits(items)

    fresh = [customer for customer in resolver.new_customers.values() if not customer.written]
    fresh_rows = []
    for customer in fresh:
        if customer.id not in seen:
            continue  # merged away (its row was written for the merge): nothing more to write
        changes = latest.pop(customer.id, {})
        traits = {key: value for key, (_stamp, value) in changes.items()}
        stamps = {key: stamp for key, (stamp, _value) in changes.items()}
        fresh_rows.append((customer.id, *seen[customer.id], _display_name(traits, ""), traits, stamps))
    changed: dict[int, tuple[dict, dict, str]] = {}
    if latest:  # read first: in a pipeline, fetching the rows waits for everything sent before
        cursor.execute(
            "SELECT id, traits, traits_updated_at, name FROM cdp_customer WHERE id = ANY(%s::bigint[])",
            [id_array(latest)],
        )
        for customer_id, traits_text, stamps_text, name in cursor.fetchall():
            # Django's connection reads jsonb as text (its JSONField decodes it itself).
            traits, stamps = json_codec.loads(traits_text), json_codec.loads(stamps_text)
            for key, (stamp, value) in latest[customer_id].items():
                if stamps.get(key, "") <= stamp:
                    traits[key] = value
                    stamps[key] = stamp
            changed[customer_id] = (traits, stamps, _display_name(traits, name))
    if fresh_rows:
        _customers_insert(cursor, fresh_rows, resolver.now)
    written_fresh = {row[0] for row in fresh_rows}
    others = sorted(customer_id for customer_id in seen if customer_id not in written_fresh)
    if not others:
        return
    # One row version per customer and group; sorted, so concurrent groups lock in one order.
    cursor.execute(
        """
        UPDATE cdp_customer AS customer SET
            first_seen_at = LEAST(COALESCE(customer.first_seen_at, seen.first_at), seen.first_at),
            last_seen_at = GREATEST(COALESCE(customer.last_seen_at, seen.last_at), seen.last_at),
            traits = COALESCE(seen.traits::jsonb, customer.traits),
            traits_updated_at = COALESCE(seen.stamps::jsonb, customer.traits_updated_at),
            name = COALESCE(seen.name, customer.name),
            updated_at = CASE WHEN seen.traits IS NULL THEN customer.updated_at ELSE %s END
        FROM json_to_recordset(%s::json)
            AS seen(id bigint, first_at timestamptz, last_at timestamptz, traits jsonb, stamps jsonb,
                    name text)
        WHERE customer.id = seen.id
        """,
        [
            resolver.now,
            json_rows(
                "id first_at last_at traits stamps name",
                ((c, *seen[c], *changed.get(c, (None, None, None))) for c in others),
            ),
        ],
    )


def _write_group(resolver: _Resolver, items: list[Incoming]) -> SharedCounts:
    """Customers, identities, rollups and events of a resolved group. The statements go out in one
    pipeline: the server runs each while this process builds the next (the writer lock is held
    meanwhile, so time saved here is throughput). The events follow by COPY, which a pipeline cannot
    carry, streamed as they are formatted."""
    raw = connection.connection
    # Django's error classes, as its own cursors raise them (a race is an IntegrityError to the caller).
    with connection.wrap_database_errors, raw.pipeline(), raw.cursor() as cursor:
        _write_customers(cursor, resolver, items)
        resolver.save_identities(cursor)
        shared = _update_rollups(cursor, items)
    _store_events(items)
    return shared


EVENT_COLUMNS = (
    "customer_id",
    "origin_customer_id",
    "source_id",
    "kind",
    "name",
    "channel",
    "timestamp",
    "received_at",
    "message_id",
    "properties",
    "context",
    "amount",
)


def _store_events(items: list[Incoming]) -> None:
    """COPY, not INSERT: several times faster for the JSON columns, and inside the batch's transaction.
    ID numbers are stored as their keyed hash (identities were read from the clear values before)."""
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {Event._meta.db_table} ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy,
    ):
        for item in items:
            copy.write_row(
                (
                    item.customer_id,
                    item.customer_id,
                    item.source.pk,
                    item.message["kind"],
                    item.message["name"],
                    item.source.kind,
                    item.timestamp,
                    item.received_at,
                    item.message["messageId"],
                    Jsonb(id_numbers_hashed(item.message["properties"]), dumps=json_codec.dumps),
                    Jsonb(id_numbers_hashed(item.message["context"]), dumps=json_codec.dumps),
                    item.amount,
                )
            )


@dataclass
class SharedCounts:
    """Counters every group touches (per source, channel and day, hour of week): written after the
    group commits, in a short transaction of their own, so groups do not queue on these rows."""

    events_by_source: dict
    channel_daily: dict
    hours: dict


def _update_rollups(cursor, items: list[Incoming]) -> SharedCounts:
    stats: dict[tuple[int, str], list] = {}
    daily: dict[tuple[int, str, dt.date], int] = defaultdict(int)
    channel_daily: dict[tuple[dt.date, str, str], int] = defaultdict(int)
    hours: dict[tuple[str, int], int] = defaultdict(int)
    events_by_source: dict[int, int] = defaultdict(int)
    for item in items:
        events_by_source[item.source.pk] += 1
        name = item.message["name"]
        moment = item.timestamp
        amount = item.amount or Decimal(0)
        entry = stats.setdefault((item.customer_id, name), [moment, moment, 0, Decimal(0)])
        entry[0], entry[1] = min(entry[0], moment), max(entry[1], moment)
        entry[2] += 1
        entry[3] += amount
        daily[(item.customer_id, name, item.local_day)] += 1
        channel_daily[(item.local_day, item.source.kind, name)] += 1
        hours[(item.source.kind, item.hour_of_week)] += 1
    # One statement each, from arrays; sorted, so concurrent batches lock rows in one order.
    rows = sorted(stats.items())
    cursor.execute(
        """
        INSERT INTO cdp_customereventstats (customer_id, name, first_at, last_at, count, amount_sum)
        SELECT * FROM json_to_recordset(%s::json) AS new(customer_id bigint, name text,
            first_at timestamptz, last_at timestamptz, count bigint, amount_sum numeric)
        ON CONFLICT (customer_id, name) DO UPDATE SET
            first_at = LEAST(cdp_customereventstats.first_at, EXCLUDED.first_at),
            last_at = GREATEST(cdp_customereventstats.last_at, EXCLUDED.last_at),
            count = cdp_customereventstats.count + EXCLUDED.count,
            amount_sum = cdp_customereventstats.amount_sum + EXCLUDED.amount_sum
        """,
        [
            json_rows(
                "customer_id name first_at last_at count amount_sum", (key + tuple(v) for key, v in rows)
            )
        ],
    )
    days = sorted(daily.items())
    cursor.execute(
        """
        INSERT INTO cdp_customereventdaily (customer_id, name, day, count)
        SELECT * FROM json_to_recordset(%s::json)
            AS new(customer_id bigint, name text, day date, count int)
        ON CONFLICT (customer_id, name, day) DO UPDATE
        SET count = cdp_customereventdaily.count + EXCLUDED.count
        """,
        [json_rows("customer_id name day count", ((*key, count) for key, count in days))],
    )
    return SharedCounts(dict(events_by_source), dict(channel_daily), dict(hours))


@transaction.atomic
def shared_counts_add(counts: SharedCounts) -> None:
    with connection.cursor() as cursor:
        cursor.executemany(
            """
            INSERT INTO cdp_channeleventdaily (day, channel, name, count) VALUES (%s, %s, %s, %s)
            ON CONFLICT (day, channel, name) DO UPDATE
            SET count = cdp_channeleventdaily.count + EXCLUDED.count
            """,
            [(*key, count) for key, count in sorted(counts.channel_daily.items())],
        )
        cursor.executemany(
            """
            INSERT INTO cdp_channelhourofweek (channel, hour_of_week, count) VALUES (%s, %s, %s)
            ON CONFLICT (channel, hour_of_week) DO UPDATE
            SET count = cdp_channelhourofweek.count + EXCLUDED.count
            """,
            [(*key, count) for key, count in sorted(counts.hours.items())],
        )
    for source_id, count in sorted(counts.events_by_source.items()):
        Source.objects.filter(pk=source_id).update(
            event_count=F("event_count") + count, last_event_at=timezone.now()
        )


# Events that change consent, with the channel in properties.channel (e.g. "sms", "email", "wechat").
CONSENT_EVENTS = {"Subscribed": Consent.Status.SUBSCRIBED, "Unsubscribed": Consent.Status.UNSUBSCRIBED}


def _record_consents(items: list[Incoming]) -> None:
    """The latest consent event per customer and channel wins (by event time). Only a source trusted
    to say so (``SourceTrust.may_subscribe``) subscribes anyone; any source may unsubscribe."""
    latest: dict[tuple[int, str], Incoming] = {}
    for item in items:
        channel = item.message["properties"].get("channel")
        if item.message["name"] not in CONSENT_EVENTS or not isinstance(channel, str) or not channel.strip():
            continue
        if item.message["name"] == "Subscribed" and not item.source.trust.may_subscribe:
            continue
        key = (item.customer_id, channel.strip().lower()[:20])
        if key not in latest or latest[key].timestamp <= item.timestamp:
            latest[key] = item
    for (customer_id, channel), item in sorted(latest.items()):
        consent_record(
            customer_id=customer_id,
            channel=channel,
            status=CONSENT_EVENTS[item.message["name"]],
            changed_at=item.timestamp,
            origin=str(item.message["properties"].get("origin") or item.source.name),
        )


def _lock_customers(customer_ids: list[int]) -> None:
    """Locks the customers this batch's identities name, in id order; if another worker merged one of
    them away since we read the identities, start over (the identities now name the survivor)."""
    if not customer_ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT merged_into_id FROM cdp_customer WHERE id = ANY(%s::bigint[]) ORDER BY id FOR UPDATE",
            [id_array(customer_ids)],
        )
        rows = [merged_into for (merged_into,) in cursor.fetchall()]
    if len(rows) != len(customer_ids) or any(rows):
        raise MergeRetry("a customer of this batch was merged by another worker meanwhile")


def _incoming(message: dict, batch: IngestBatch, local: dt.tzinfo) -> Incoming:
    # No event is dated later than its arrival plus the clock skew allowed (a future date would make
    # it win every "newest" comparison: traits, consent), whichever way it came in.
    moment = min(dt.datetime.fromisoformat(message["timestamp"]), batch.received_at + FUTURE_SKEW)
    local_moment = moment.astimezone(local)
    unverified = batch.source.trust.unverified_identifiers
    return Incoming(
        message=message,
        source=batch.source,
        received_at=batch.received_at,
        identities=identities_of(message, unverified),
        timestamp=moment.astimezone(dt.UTC),  # in UTC, so that trait freshness compares like with like
        local_day=local_moment.date(),
        hour_of_week=local_moment.weekday() * 24 + local_moment.hour,
        traits=_traits_of(message, unverified),
        amount=_amount(message["properties"]),
    )


def _prepare(batches: list[IngestBatch]) -> list[Incoming]:
    """The part that needs no database (done before the writer lock): parsed times, identifiers,
    traits, amounts."""
    local = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    return [_incoming(message, batch, local) for batch in batches for message in batch.events]


# Resolution and writing hold this lock (per transaction): groups of requests share customers and
# new identifiers so often that parallel groups would mostly wait for, or deadlock on, each other.
# Workers still overlap: each claims and prepares its next group while another one writes.
INGEST_WRITER_LOCK = 0x6364_7001


def _process(batches: list[IngestBatch]) -> tuple[list[int], SharedCounts | None]:
    """Processes claimed batches inside the caller's transaction, in order; returns the customer id
    of each new event (replayed ones are skipped)."""
    prepared = _prepare(batches)
    # Replays are dropped before the writer lock: that needs no view of the identities. A concurrent
    # group holding some of the same keys (a replay in flight) makes this one wait for its commit, and
    # keys go in sorted, so two groups never wait for each other.
    fresh = _new_message_ids(sorted({(item.source.pk, item.message["messageId"]) for item in prepared}))
    items, seen = [], set()
    for item in prepared:
        key = (item.source.pk, item.message["messageId"])
        if key in fresh and key not in seen:
            seen.add(key)
            items.append(item)
    if not items:
        return [], None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [INGEST_WRITER_LOCK])
    resolver = _Resolver(timezone.now())
    resolver.load(items)
    _lock_customers(sorted(set(resolver.owner.values())))
    for item in items:
        resolver.resolve(item)
    resolver.merges_apply()
    for item in items:
        item.customer_id = resolver.survivor_of(item.customer_id)
    shared = _write_group(resolver, items)
    _record_consents(items)
    return [item.customer_id for item in items], shared


def _claim(batch_ids: list[int] | None, wait: bool, skip: set[int], group: int) -> list[IngestBatch]:
    """Locks the next group of pending batches (the given ones, else those tried least, oldest first,
    leaving out ``skip``); in the caller's transaction."""
    # OF self: lock the batch rows only, not their source (which every API commit checks).
    pending = IngestBatch.objects.select_for_update(skip_locked=not wait, of=("self",))
    pending = pending.filter(attempts__lt=MAX_ATTEMPTS)
    if batch_ids is not None:
        pending = pending.filter(pk__in=batch_ids)
    if skip:
        pending = pending.exclude(pk__in=skip)
    # Ids first: selecting the payloads here would read every pending payload for the sort.
    claimed = list(pending.order_by("attempts", "pk").values_list("pk", flat=True)[:group])
    # The payloads as text, decoded with the faster codec (not by the model field).
    batches = list(
        IngestBatch.objects.filter(pk__in=claimed)
        .select_related("source")
        .defer("events")
        .annotate(payload=Cast("events", TextField()))
        .order_by("attempts", "pk")
    )
    for batch in batches:
        batch.events = json_codec.loads(batch.payload)
    return batches


Outcome = tuple[list[int], SharedCounts | None]


def _attempt(batches: list[IngestBatch]) -> Outcome | Exception:
    """Processes batches in one savepoint: their outcome, or the exception that undid them."""
    try:
        with transaction.atomic():
            return _process(batches)
    except Exception as exc:
        return exc


def _process_claimed(batches: list[IngestBatch]) -> list[tuple[list[IngestBatch], Outcome]]:
    """The group in one go; if that fails, each batch on its own, so one bad request (or one race
    with another worker) costs only that batch an attempt."""
    outcome = _attempt(batches)
    if not isinstance(outcome, Exception):
        return [(batches, outcome)]
    if len(batches) > 1:
        log.info("a group of %s batches failed (%r); redoing them one by one", len(batches), outcome)
    done = []
    for batch in batches:
        outcome = _attempt([batch]) if len(batches) > 1 else outcome
        if not isinstance(outcome, Exception):
            done.append(([batch], outcome))
            continue
        _count_attempt(batch, outcome)
        if isinstance(outcome, (IntegrityError, OperationalError, MergeRetry)):
            # Rare with one writer at a time; a warning, so that a run of them shows in the logs.
            log.warning("batch %s raced another worker (%s); retrying", batch.pk, type(outcome).__name__)
        else:
            log.error("batch %s failed", batch.pk, exc_info=outcome)
    return done


def _shared_counts_sum(parts: list[SharedCounts]) -> SharedCounts:
    total = SharedCounts(defaultdict(int), defaultdict(int), defaultdict(int))
    for part in parts:
        for mine, theirs in (
            (total.events_by_source, part.events_by_source),
            (total.channel_daily, part.channel_daily),
            (total.hours, part.hours),
        ):
            for key, count in theirs.items():
                mine[key] += count
    return total


def batches_process(
    *,
    batch_ids: list[int] | None = None,
    limit: int = 200,
    wait: bool = False,
    settle_until: float | None = None,
    group: int = GROUP_BATCHES,
) -> int:
    """Claims pending batches in groups and processes each group in one transaction. A batch that
    failed goes behind the others, and after MAX_ATTEMPTS it stays pending with its error for people
    to see; one call tries a batch once at most (the next sweep tries again). ``wait`` waits for
    batches another worker holds instead of skipping them. When nothing is pending before the moment
    ``settle_until`` (``time.time()``), looks once more then. ``group``: requests per transaction.
    Processes about ``limit`` batches at most; returns the events stored."""
    stored, failed = 0, set()
    while limit > 0:
        with transaction.atomic():
            batches = _claim(batch_ids, wait, failed, group)
            done = _process_claimed(batches) if batches else []
            failed |= {batch.pk for batch in batches} - {batch.pk for group, _ in done for batch in group}
            touched = [customer_id for _group, (ids, _shared) in done for customer_id in ids]
            stored += len(touched)
            # Done: the requests leave the inbox (their payloads may hold personal data; the events
            # are stored now). Deleting costs the database less than marking them, and the inbox
            # stays the size of the backlog.
            IngestBatch.objects.filter(pk__in=[batch.pk for group, _ in done for batch in group]).delete()
            transaction.on_commit(lambda ids=touched: _customers_changed(ids))
        if not batches:
            if settle_until is None or time.time() >= settle_until:
                return stored
            time.sleep(max(0.0, settle_until - time.time()))
            settle_until = None
            continue
        shared = [counts for _group, (_ids, counts) in done if counts is not None]
        if shared:  # the group is committed; the shared counters follow in their own transaction
            try:
                shared_counts_add(_shared_counts_sum(shared))
            except Exception:  # report counters only: never fail or redo the batches for them
                log.exception("could not add batches %s to the shared counters", [b.pk for b in batches])
        limit -= len(batches)
    return stored


def _count_attempt(batch: IngestBatch, exc: Exception) -> None:
    IngestBatch.objects.filter(pk=batch.pk).update(
        attempts=F("attempts") + 1, error=f"{type(exc).__name__}: {exc}"[:2000]
    )


@dataclass(frozen=True)
class Backlog:
    waiting: int  # accepted requests not processed yet
    waiting_events: int
    stuck: list[IngestBatch]  # those that failed MAX_ATTEMPTS times: people decide (retry or discard)
    stuck_count: int


def backlog_read(*, limit: int = 50) -> Backlog:
    """What the ingest workers still have to do, and what they gave up on (for the sources page)."""
    pending = IngestBatch.objects.all()  # processed requests leave the inbox
    counts = pending.aggregate(
        waiting=Count("pk", filter=Q(attempts__lt=MAX_ATTEMPTS)),
        waiting_events=Sum("event_count", filter=Q(attempts__lt=MAX_ATTEMPTS), default=0),
        stuck=Count("pk", filter=Q(attempts__gte=MAX_ATTEMPTS)),
    )
    stuck = pending.filter(attempts__gte=MAX_ATTEMPTS).select_related("source").defer("events")
    return Backlog(
        counts["waiting"], counts["waiting_events"], list(stuck.order_by("pk")[:limit]), counts["stuck"]
    )


def ingest_batch_retry(*, batch: IngestBatch, actor) -> None:
    """Gives a request that failed MAX_ATTEMPTS times a fresh set of attempts (after a fix, say)."""
    with transaction.atomic():
        updated = IngestBatch.objects.filter(pk=batch.pk).update(attempts=0)
        if updated:
            audit_record(
                actor=actor, action="ingest.retry", target=batch, details={"error": batch.error[:300]}
            )
            transaction.on_commit(_wake_workers, robust=True)


def ingest_batch_discard(*, batch: IngestBatch, actor) -> None:
    """Drops a request that cannot be processed: it leaves the inbox, the audit log keeps why."""
    with transaction.atomic():
        deleted, _ = IngestBatch.objects.filter(pk=batch.pk).delete()
        if deleted:
            audit_record(
                actor=actor,
                action="ingest.discard",
                target=batch,
                details={"events": batch.event_count, "error": batch.error[:300]},
            )


def ingest_failed_expire(*, now: dt.datetime | None = None) -> int:
    """Deletes the requests that failed every attempt and were received more than
    ``INGEST_FAILED_RETENTION_DAYS`` ago (their events may hold personal data in clear); returns how
    many. Requests still being tried are never touched."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.INGEST_FAILED_RETENTION_DAYS)
    deleted, _ = IngestBatch.objects.filter(attempts__gte=MAX_ATTEMPTS, received_at__lt=cutoff).delete()
    if deleted:
        log.info("deleted %s failed tracking requests past their retention", deleted)
    return deleted


def _customers_changed(customer_ids: list[int]) -> None:
    """After a commit: open pages fetch the new rows; rules over these customers run again."""
    publish_customers_changed(customer_ids)
    if customer_ids:
        customers_changed.send(sender=Customer, customer_ids=sorted(set(customer_ids)))


def system_events_record(
    *,
    rows: list[tuple[int, str]] | list[tuple[int, str, dict]],
    kind: str,
    properties: dict,
    moment: dt.datetime,
    message_prefix: str,
    rules_follow: bool = True,
) -> None:
    """Events the product itself records on customers' timelines (entered a segment, got a tag), with
    their rollups, so that rules and journeys can use them like any other event ("entered segment X
    in the last 7 days"). ``rows`` are (customer id, event name), or with a third item, properties of
    that row alone on top of ``properties`` (the message a ``message_sent`` is about); one statement
    each, any number.
    ``rules_follow``: whether rules over these customers run again after the commit (not for the
    events a segment refresh itself writes, which would start it over)."""
    if not rows:
        return
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS system_event_rows")
        cursor.execute(
            "CREATE TEMP TABLE system_event_rows ON COMMIT DROP AS"
            " SELECT * FROM json_to_recordset(%s::json) AS row(customer_id bigint, name text, own jsonb)",
            [
                json_rows(
                    "customer_id name own",
                    ((row[0], row[1], row[2] if len(row) > 2 else None) for row in rows),
                )
            ],
        )
        cursor.execute(
            """
            INSERT INTO cdp_event (customer_id, origin_customer_id, source_id, kind, name, channel,
                                   timestamp, received_at, message_id, properties, context, amount)
            SELECT customer_id, customer_id, NULL, %s, name, 'system', %s, %s,
                   %s || '-' || customer_id, %s::jsonb || COALESCE(own, '{}'::jsonb), '{}'::jsonb, NULL
            FROM system_event_rows
            """,
            [kind, moment, moment, message_prefix, json_codec.dumps_text(properties)],
        )
        cursor.execute(
            """
            INSERT INTO cdp_customereventstats (customer_id, name, first_at, last_at, count, amount_sum)
            SELECT customer_id, name, %s, %s, count(*), 0 FROM system_event_rows
            GROUP BY customer_id, name ORDER BY customer_id, name
            ON CONFLICT (customer_id, name) DO UPDATE SET
                first_at = LEAST(cdp_customereventstats.first_at, EXCLUDED.first_at),
                last_at = GREATEST(cdp_customereventstats.last_at, EXCLUDED.last_at),
                count = cdp_customereventstats.count + EXCLUDED.count
            """,
            [moment, moment],
        )
        cursor.execute(
            """
            INSERT INTO cdp_customereventdaily (customer_id, name, day, count)
            SELECT customer_id, name, %s, count(*) FROM system_event_rows
            GROUP BY customer_id, name ORDER BY customer_id, name
            ON CONFLICT (customer_id, name, day) DO UPDATE
            SET count = cdp_customereventdaily.count + EXCLUDED.count
            """,
            [timezone.localdate(moment)],
        )
        cursor.execute("DROP TABLE system_event_rows")
    touched = sorted({row[0] for row in rows})
    if rules_follow:
        transaction.on_commit(lambda: _customers_changed(touched))
    else:
        transaction.on_commit(lambda: publish_customers_changed(touched))


API_SOURCE_NAME = "Open API"


def _upsert_message(*, identities: dict[str, str], traits: dict, message_id: str | None) -> dict:
    return {
        "kind": "identify",
        "name": "identify",
        "messageId": message_id or f"api-{uuid.uuid4()}",
        "userId": identities.get("user_id"),
        "anonymousId": identities.get("anonymous_id"),
        "previousId": None,
        "timestamp": timezone.now().isoformat(),
        "properties": {},
        "traits": traits,
        "context": {"externalIds": [{"type": kind, "id": value} for kind, value in identities.items()]},
    }


def customers_named_by(*, identities: dict[str, str]) -> set[int]:
    """The (surviving) customers an upsert with these identifiers would update or merge."""
    keys = [
        identity.key
        for identity in identities_of(_upsert_message(identities=identities, traits={}, message_id="-"))
    ]
    if not keys:
        return set()
    match = Q()
    for kind, value in keys:
        match |= Q(type=kind, value=value)
    return {
        customer_survivor(pk) for pk in Identity.objects.filter(match).values_list("customer_id", flat=True)
    }


def customer_upsert(
    *, identities: dict[str, str], traits: dict, message_id: str | None = None
) -> tuple[Customer, bool]:
    """Creates or updates the customer these identifiers name, through the same path as tracked events
    (so merges and rules apply alike), and returns it with whether it is new. Raises ValueError when
    none of the identifiers is usable."""
    message = _upsert_message(identities=identities, traits=traits, message_id=message_id)
    keys = [identity.key for identity in identities_of(message)]
    if not keys:
        raise ValueError("None of these identifiers is usable (empty, malformed or a placeholder).")
    existed = Identity.objects.filter(
        type__in=[key[0] for key in keys], value__in=[key[1] for key in keys]
    ).exists()
    source = internal_source(name=API_SOURCE_NAME, kind=Source.Kind.SERVER)
    batch = inbox_store(source=source, events=[message], enqueue=False)
    batches_process(batch_ids=[batch.pk], wait=True)
    event = Event.objects.filter(source=source, message_id=message["messageId"]).first()
    if event is not None:
        owner_id = event.customer_id
    else:  # a retried call: its event exists under the first call's batch, found by identity
        owner_id = (
            Identity.objects.filter(type__in=[k[0] for k in keys], value__in=[k[1] for k in keys])
            .values_list("customer_id", flat=True)
            .first()
        )
    if owner_id is None:
        raise ValueError("The identifiers could not be stored; try again.")
    customer = Customer.objects.get(pk=customer_survivor(owner_id))
    return customer, not existed
