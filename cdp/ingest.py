"""From accepted tracking requests to customers, events and rollups.

``inbox_store`` commits a request's events as one ``IngestBatch`` row before the API answers 200.
``batches_process`` claims pending batches (``FOR UPDATE SKIP LOCKED``, so any number of workers
share them) and, in one transaction per batch: drops messageIds seen before, resolves identities
(creating and merging customers), stores the events, updates traits and rollups. A worker that
dies mid-batch leaves it pending, and the next claim redoes it from the start.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from psycopg.types.json import Jsonb

from cdp.identity import NormalisedIdentity, identities_of, identity_type_of
from cdp.merge import MergeConflict, MergeRetry, customer_survivor, customers_merge, review_open
from cdp.models import Consent, Customer, Event, Identity, IngestBatch, Source
from cdp.realtime import publish_customers_changed
from cdp.services import consent_record, internal_source

log = logging.getLogger(__name__)
AMOUNT_PROPERTIES = ("revenue", "total", "amount", "value")
MAX_ATTEMPTS = 10


def inbox_store(*, source: Source, events: list[dict], enqueue: bool = True) -> IngestBatch:
    """Commits the accepted events; processing is queued once the commit is done (unless the caller
    processes the batch itself)."""
    from cdp.tasks import ingest_batches

    with transaction.atomic():
        batch = IngestBatch.objects.create(
            source=source, received_at=timezone.now(), events=events, event_count=len(events)
        )
        if enqueue:
            transaction.on_commit(lambda: ingest_batches.delay(batch.pk), robust=True)
    return batch


@dataclass
class Incoming:
    message: dict
    identities: list[NormalisedIdentity]
    timestamp: dt.datetime
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


def _traits_of(message: dict) -> dict:
    traits = (
        message.get("traits")
        if message["kind"] == "identify"
        else (message.get("context") or {}).get("traits")
    )
    if not isinstance(traits, dict):
        return {}
    return {key: value for key, value in traits.items() if key not in SENSITIVE_TRAITS}


def _new_message_ids(source_id: int, message_ids: list[str]) -> set[str]:
    """Records the batch's messageIds; returns those never seen before (in this or another batch)."""
    if not message_ids:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO cdp_eventkey (source_id, message_id)
            SELECT %s, unnest(%s::text[])
            ON CONFLICT (source_id, message_id) DO NOTHING
            RETURNING message_id
            """,
            [source_id, message_ids],
        )
        return {row[0] for row in cursor.fetchall()}


def _conflict_reason(item: Incoming) -> str:
    shared = ", ".join(f"{identity.type}" for identity in item.identities if not identity.encrypted_value)
    return f"an event shares {shared} with both, but merging would break an identity rule"


class _Resolver:
    """Maps each incoming event to a customer, creating customers and merging them as identities demand."""

    def __init__(self, source: Source, now: dt.datetime):
        self.source = source
        self.now = now
        self.owner: dict[tuple[str, str], int] = {}  # identity key -> customer id
        self.held: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.new_identities: dict[tuple[str, str], tuple[NormalisedIdentity, int]] = {}
        self.merged_into: dict[int, int] = {}  # customers merged away while resolving this batch

    def load(self, incoming: list[Incoming]) -> None:
        keys = {identity.key for item in incoming for identity in item.identities}
        if not keys:
            return
        by_type: dict[str, list[str]] = defaultdict(list)
        for identity_type, value in keys:
            by_type[identity_type].append(value)
        # One index lookup per type (type = ... AND value = ANY(...)), flat however big the table.
        lookups = Q()
        for identity_type, values in by_type.items():
            lookups |= Q(type=identity_type, value__in=values)
        for identity_type, value, customer_id in Identity.objects.filter(lookups).values_list(
            "type", "value", "customer_id"
        ):
            self.owner[(identity_type, value)] = customer_id
        self._load_held(set(self.owner.values()))

    def _load_held(self, customer_ids: set[int]) -> None:
        """The values of limited types (max per customer) the matched customers already hold."""
        if not customer_ids:
            return
        rows = Identity.objects.filter(customer_id__in=customer_ids).values_list(
            "customer_id", "type", "value"
        )
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

    def _attach(self, customer_id: int, identity: NormalisedIdentity) -> None:
        self.owner[identity.key] = customer_id
        self.new_identities[identity.key] = (identity, customer_id)
        if identity_type_of(identity.type).max_per_customer is not None:
            self.held[customer_id][identity.type].add(identity.value)

    def _remap(self, merged: int, survivor: int) -> None:
        self.merged_into[merged] = survivor
        for key, owner in self.owner.items():
            if owner == merged:
                self.owner[key] = survivor
        for key, (identity, owner) in self.new_identities.items():
            if owner == merged:
                self.new_identities[key] = (identity, survivor)
        for identity_type, values in self.held.pop(merged, {}).items():
            self.held[survivor][identity_type] |= values

    def _new_customer(self, item: Incoming, pending_customers: list[Customer]) -> int:
        customer = Customer(first_seen_at=item.timestamp, last_seen_at=item.timestamp)
        customer.save()
        pending_customers.append(customer)
        return customer.pk

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

    def resolve(self, item: Incoming, pending_customers: list[Customer]) -> None:
        ranked = sorted(item.identities, key=lambda identity: -identity_type_of(identity.type).priority)
        owners = []
        for identity in ranked:
            owner = self.owner.get(identity.key)
            if owner is not None and owner not in owners:
                owners.append(owner)
        if not owners:
            customer_id = self._new_customer(item, pending_customers)
        elif len(owners) == 1 and self._contradicts(owners[0], ranked):
            customer_id = self._new_customer(item, pending_customers)
            review_open(first_id=owners[0], second_id=customer_id, reason=_conflict_reason(item))
        else:
            customer_id = owners[0]  # the customer named by the strongest identity
            for other in owners[1:]:
                survivor, merged = sorted((customer_id, other))
                if not self._can_merge(survivor, merged):
                    review_open(first_id=survivor, second_id=merged, reason=_conflict_reason(item))
                    continue
                try:
                    customers_merge(survivor_id=survivor, merged_id=merged, reason="identity", actor=None)
                except MergeConflict as conflict:
                    review_open(first_id=survivor, second_id=merged, reason=str(conflict))
                    continue
                self._remap(merged, survivor)
                customer_id = survivor
        for identity in ranked:
            if identity.key not in self.owner and self._fits(customer_id, identity):
                self._attach(customer_id, identity)
        item.customer_id = customer_id

    def survivor_of(self, customer_id: int) -> int:
        """Where an earlier event of the batch must go if a later one merged its customer away."""
        while customer_id in self.merged_into:
            customer_id = self.merged_into[customer_id]
        return customer_id

    def save_identities(self) -> None:
        if not self.new_identities:
            return
        rows = [
            Identity(
                customer_id=customer_id,
                type=identity.type,
                value=identity.value,
                encrypted_value=identity.encrypted_value,
                source=self.source,
                first_seen_at=self.now,
            )
            for identity, customer_id in self.new_identities.values()
        ]
        # A concurrent batch that took one of these identities first makes this batch start over.
        Identity.objects.bulk_create(rows)


def _apply_traits(items: list[Incoming]) -> None:
    """Newest value wins per trait, judged by event time, so a late event never overwrites a newer one."""
    latest: dict[int, dict[str, tuple[str, object]]] = defaultdict(dict)
    for item in items:
        stamp = item.timestamp.isoformat()
        for key, value in item.traits.items():
            current = latest[item.customer_id].get(key)
            if current is None or current[0] <= stamp:
                latest[item.customer_id][key] = (stamp, value)
    if not latest:
        return
    customers = Customer.objects.filter(pk__in=latest.keys()).only(
        "pk", "name", "traits", "traits_updated_at"
    )
    changed = []
    for customer in customers:
        for key, (stamp, value) in latest[customer.pk].items():
            if customer.traits_updated_at.get(key, "") <= stamp:
                customer.traits[key] = value
                customer.traits_updated_at[key] = stamp
        name = customer.traits.get("name") or " ".join(
            str(customer.traits[part]) for part in ("lastName", "firstName") if customer.traits.get(part)
        )
        customer.name = str(name)[:200] if name else customer.name
        changed.append(customer)
    Customer.objects.bulk_update(changed, ["traits", "traits_updated_at", "name"])


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


def _store_events(source: Source, items: list[Incoming], received_at: dt.datetime) -> None:
    """COPY, not INSERT: several times faster for the JSON columns, and inside the batch's transaction."""
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {Event._meta.db_table} ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy,
    ):
        for item in items:
            copy.write_row(
                (
                    item.customer_id,
                    item.customer_id,
                    source.pk,
                    item.message["kind"],
                    item.message["name"],
                    source.kind,
                    item.timestamp,
                    received_at,
                    item.message["messageId"],
                    Jsonb(item.message["properties"]),
                    Jsonb(item.message["context"]),
                    _amount(item.message["properties"]),
                )
            )


@dataclass
class SharedCounts:
    """Counters every batch touches (per source, channel and day, hour of week): written after the
    batch commits, in a short transaction of their own, so batches do not queue on these rows."""

    source_id: int
    events: int
    channel_daily: dict
    hours: dict


def _update_rollups(source: Source, items: list[Incoming]) -> SharedCounts:
    local = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    stats: dict[tuple[int, str], list] = {}
    daily: dict[tuple[int, str, dt.date], int] = defaultdict(int)
    channel_daily: dict[tuple[dt.date, str, str], int] = defaultdict(int)
    hours: dict[tuple[str, int], int] = defaultdict(int)
    for item in items:
        name = item.message["name"]
        moment = item.timestamp
        amount = _amount(item.message["properties"]) or Decimal(0)
        entry = stats.setdefault((item.customer_id, name), [moment, moment, 0, Decimal(0)])
        entry[0], entry[1] = min(entry[0], moment), max(entry[1], moment)
        entry[2] += 1
        entry[3] += amount
        local_moment = moment.astimezone(local)
        daily[(item.customer_id, name, local_moment.date())] += 1
        channel_daily[(local_moment.date(), source.kind, name)] += 1
        hours[(source.kind, local_moment.weekday() * 24 + local_moment.hour)] += 1
    with connection.cursor() as cursor:
        # One statement each, from arrays; sorted, so concurrent batches lock rows in one order.
        rows = sorted(stats.items())
        cursor.execute(
            """
            INSERT INTO cdp_customereventstats (customer_id, name, first_at, last_at, count, amount_sum)
            SELECT * FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[], %s::timestamptz[],
                                 %s::bigint[], %s::numeric[])
            ON CONFLICT (customer_id, name) DO UPDATE SET
                first_at = LEAST(cdp_customereventstats.first_at, EXCLUDED.first_at),
                last_at = GREATEST(cdp_customereventstats.last_at, EXCLUDED.last_at),
                count = cdp_customereventstats.count + EXCLUDED.count,
                amount_sum = cdp_customereventstats.amount_sum + EXCLUDED.amount_sum
            """,
            [
                [customer for (customer, _name), _values in rows],
                [name for (_customer, name), _values in rows],
                [values[0] for _key, values in rows],
                [values[1] for _key, values in rows],
                [values[2] for _key, values in rows],
                [values[3] for _key, values in rows],
            ],
        )
        days = sorted(daily.items())
        cursor.execute(
            """
            INSERT INTO cdp_customereventdaily (customer_id, name, day, count)
            SELECT * FROM unnest(%s::bigint[], %s::text[], %s::date[], %s::int[])
            ON CONFLICT (customer_id, name, day) DO UPDATE
            SET count = cdp_customereventdaily.count + EXCLUDED.count
            """,
            [
                [key[0] for key, _n in days],
                [key[1] for key, _n in days],
                [key[2] for key, _n in days],
                [count for _key, count in days],
            ],
        )
    return SharedCounts(source.pk, len(items), dict(channel_daily), dict(hours))


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
    Source.objects.filter(pk=counts.source_id).update(
        event_count=F("event_count") + counts.events, last_event_at=timezone.now()
    )


# Events that change consent, with the channel in properties.channel (e.g. "sms", "email", "wechat").
CONSENT_EVENTS = {"Subscribed": Consent.Status.SUBSCRIBED, "Unsubscribed": Consent.Status.UNSUBSCRIBED}


def _record_consents(source: Source, items: list[Incoming]) -> None:
    """The latest consent event per customer and channel wins (by event time)."""
    latest: dict[tuple[int, str], Incoming] = {}
    for item in items:
        channel = item.message["properties"].get("channel")
        if item.message["name"] not in CONSENT_EVENTS or not isinstance(channel, str) or not channel.strip():
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
            origin=str(item.message["properties"].get("origin") or source.name),
        )


def _touch_customers(items: list[Incoming]) -> None:
    seen: dict[int, tuple[dt.datetime, dt.datetime]] = {}
    for item in items:
        first, last = seen.get(item.customer_id, (item.timestamp, item.timestamp))
        seen[item.customer_id] = (min(first, item.timestamp), max(last, item.timestamp))
    ordered = sorted(seen.items())
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE cdp_customer AS customer SET
                first_seen_at = LEAST(COALESCE(customer.first_seen_at, seen.first_at), seen.first_at),
                last_seen_at = GREATEST(COALESCE(customer.last_seen_at, seen.last_at), seen.last_at)
            FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[]) AS seen(id, first_at, last_at)
            WHERE customer.id = seen.id
            """,
            [
                [customer_id for customer_id, _times in ordered],
                [times[0] for _id, times in ordered],
                [times[1] for _id, times in ordered],
            ],
        )


def _lock_customers(customer_ids: list[int]) -> None:
    """Locks the customers this batch's identities name, in id order; if another worker merged one of
    them away since we read the identities, start over (the identities now name the survivor)."""
    if not customer_ids:
        return
    rows = list(
        Customer.objects.select_for_update()
        .filter(pk__in=customer_ids)
        .order_by("pk")
        .values_list("merged_into_id", flat=True)
    )
    if len(rows) != len(customer_ids) or any(rows):
        raise MergeRetry("a customer of this batch was merged by another worker meanwhile")


def _process(batch: IngestBatch) -> tuple[list[int], SharedCounts | None]:
    """Processes one claimed batch inside the caller's transaction; returns the customer id of each
    new event (replayed ones are skipped)."""
    source = batch.source
    fresh = _new_message_ids(source.pk, [message["messageId"] for message in batch.events])
    items, seen = [], set()
    for message in batch.events:
        if message["messageId"] not in fresh or message["messageId"] in seen:
            continue
        seen.add(message["messageId"])
        items.append(
            Incoming(
                message=message,
                identities=identities_of(message),
                # In UTC, so that trait freshness compares like with like.
                timestamp=dt.datetime.fromisoformat(message["timestamp"]).astimezone(dt.UTC),
                traits=_traits_of(message),
            )
        )
    if not items:
        return [], None
    resolver = _Resolver(source, timezone.now())
    resolver.load(items)
    _lock_customers(sorted(set(resolver.owner.values())))
    created: list[Customer] = []
    for item in items:
        resolver.resolve(item, created)
    for item in items:
        item.customer_id = resolver.survivor_of(item.customer_id)
    resolver.save_identities()
    _apply_traits(items)
    _store_events(source, items, batch.received_at)
    shared = _update_rollups(source, items)
    _touch_customers(items)
    _record_consents(source, items)
    return [item.customer_id for item in items], shared


def batches_process(*, batch_ids: list[int] | None = None, limit: int = 20, wait: bool = False) -> int:
    """Claims pending batches (the given ones, else those tried least, oldest first) and processes
    each in its own transaction. A batch that raced another worker, or failed, counts an attempt and
    goes behind the others; after MAX_ATTEMPTS it stays pending with its error for people to see.
    ``wait`` waits for a batch another worker holds instead of skipping it. Returns events stored."""
    stored = 0
    while True:
        with transaction.atomic():
            # OF self: lock the batch row only, not its source (which every API commit checks).
            pending = IngestBatch.objects.select_for_update(skip_locked=not wait, of=("self",))
            pending = pending.select_related("source")
            pending = pending.filter(processed_at__isnull=True, attempts__lt=MAX_ATTEMPTS)
            if batch_ids is not None:
                pending = pending.filter(pk__in=batch_ids)
            batch = pending.order_by("attempts", "pk").first()
            if batch is None:
                return stored
            try:
                with transaction.atomic():
                    touched, shared = _process(batch)
                    stored += len(touched)
            except (IntegrityError, OperationalError, MergeRetry) as exc:
                _count_attempt(batch, exc)
                log.info("batch %s raced another worker (%s); retrying", batch.pk, type(exc).__name__)
                continue
            except Exception as exc:
                _count_attempt(batch, exc)
                log.exception("batch %s failed", batch.pk)
                continue
            # Done: the raw payload (it may hold personal data) is no longer needed.
            batch.processed_at, batch.events = timezone.now(), []
            batch.save(update_fields=["processed_at", "events"])
            transaction.on_commit(lambda ids=touched: publish_customers_changed(ids))
        if shared is not None:  # the batch is committed; the shared counters follow in their own
            try:
                shared_counts_add(shared)
            except Exception:  # report counters only: never fail or redo the batch for them
                log.exception("could not add batch %s to the shared counters", batch.pk)
        limit -= 1
        if limit <= 0:
            return stored


def _count_attempt(batch: IngestBatch, exc: Exception) -> None:
    IngestBatch.objects.filter(pk=batch.pk).update(
        attempts=F("attempts") + 1, error=f"{type(exc).__name__}: {exc}"[:2000]
    )


API_SOURCE_NAME = "Open API"


def customer_upsert(
    *, identities: dict[str, str], traits: dict, message_id: str | None = None
) -> tuple[Customer, bool]:
    """Creates or updates the customer these identifiers name, through the same path as tracked events
    (so merges and rules apply alike), and returns it with whether it is new. Raises ValueError when
    none of the identifiers is usable."""
    message = {
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
