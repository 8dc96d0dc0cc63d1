"""Arriving events meet journeys: they start the triggers they match and wake the waits for them.

Ingestion only queues a task with the customers' ids (``journeys.signals``); the task reads those
customers' recent events whose names an active trigger or a waiting enrollment cares about. Active
triggers are indexed by event name and kept per process until a journey changes status or is
published again. Reading an event twice is harmless: entries are unique per entry key, and a wait
woken once no longer waits.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max
from django.utils import timezone

from cdp.models import Event
from cdp.sqlvalues import id_array, json_rows
from journeys.engine import enrollments_run, graph_compiled
from journeys.models import Enrollment, Journey, JourneyVersion, MatchedThrough, SweepCursor
from journeys.nodes.base import NodeConfig, TriggerType
from journeys.selectors import wait_matches
from journeys.services import Entry, enrollments_start

# Events received this long ago are still looked at (a queued task may run late).
LOOKBACK = dt.timedelta(hours=1)
# Segment entries and exits are written without the ingest signal (it would start their own refresh
# over), so the tick sweeps them by name and time; this much overlap covers late commits.
SWEEP_OVERLAP = dt.timedelta(seconds=30)
SWEPT_EVENTS = ("segment_entered", "segment_exited")


@dataclass(frozen=True)
class ActiveTrigger:
    version: JourneyVersion
    node_id: str
    kind: TriggerType
    config: NodeConfig


_index: dict[str, list[ActiveTrigger]] = {}
_index_stamp: tuple | None = None


def triggers_by_event() -> dict[str, list[ActiveTrigger]]:
    """Active journeys' triggers (their latest versions) by event name, rebuilt when journeys change."""
    global _index, _index_stamp
    active = Journey.objects.filter(status=Journey.Status.ACTIVE)
    totals = active.aggregate(
        changed=Max("updated_at"), latest=Max("versions__id"), count=Count("id", distinct=True)
    )
    stamp = (totals["changed"], totals["latest"], totals["count"])
    if stamp == _index_stamp:
        return _index
    index: dict[str, list[ActiveTrigger]] = defaultdict(list)
    latest = (
        JourneyVersion.objects.filter(journey__status=Journey.Status.ACTIVE)
        .order_by("journey_id", "-number")
        .distinct("journey_id")
    )
    for version in latest:
        graph = graph_compiled(version)
        for node_id, (kind, config) in graph.nodes.items():
            name = kind.trigger_event(config) if isinstance(kind, TriggerType) else None
            if name:
                index[name].append(ActiveTrigger(version, node_id, kind, config))
    _index, _index_stamp = dict(index), stamp
    return _index


def _today() -> dt.date:
    return timezone.now().astimezone(zoneinfo.ZoneInfo(settings.TIME_ZONE)).date()


def _entries(events: list[tuple], triggers: dict[str, list[ActiveTrigger]]) -> list[Entry]:
    today = _today()
    entries = []
    for event_id, customer_id, name, occurred_at, received_at, properties in events:
        for trigger in triggers.get(name, ()):
            if received_at < trigger.version.published_at:
                continue  # what happened before the journey was published does not start it
            if trigger.kind.trigger_matches(trigger.config, properties or {}, today=today):
                entries.append(
                    Entry(
                        version_id=trigger.version.pk,
                        journey_id=trigger.version.journey_id,
                        node_id=trigger.node_id,
                        customer_id=customer_id,
                        event_id=event_id,
                        occurred_at=occurred_at,
                        properties=properties if isinstance(properties, dict) else {},
                    )
                )
    return entries


@transaction.atomic
def _waits_wake(events: list[tuple], now: dt.datetime) -> list[int]:
    customer_ids = {event[1] for event in events}
    waiting = list(
        Enrollment.objects.filter(customer_id__in=customer_ids, status=Enrollment.Status.ACTIVE)
        .exclude(waiting_events=[])
        .values("id", "customer_id", "waiting_events", "waiting_match")
    )
    woken = []
    for enrollment in waiting:
        since = dt.datetime.fromisoformat(enrollment["waiting_match"]["since"])
        match = enrollment["waiting_match"]
        for event_id, customer_id, name, _occurred, received_at, properties in events:
            if (
                customer_id == enrollment["customer_id"]
                and name in enrollment["waiting_events"]
                and received_at >= since
                and wait_matches(properties, match.get("property", ""), match.get("value"))
            ):
                # Conditional: an enrollment the engine moved on meanwhile is left alone.
                if (
                    Enrollment.objects.filter(
                        pk=enrollment["id"], status=Enrollment.Status.ACTIVE, phase=Enrollment.Phase.RESUME
                    )
                    .exclude(waiting_events=[])
                    .update(
                        wake_at=now,
                        waiting_events=[],
                        woken_by={"id": event_id, "name": name, "properties": properties},
                    )
                ):
                    woken.append(enrollment["id"])
                break
    return woken


def events_match(*, customer_ids: list[int], now: dt.datetime | None = None) -> tuple[int, int]:
    """Starts the triggers and wakes the waits these customers' recent events match, then runs those
    enrollments at once. Returns (enrolled, woken)."""
    now = now or timezone.now()
    triggers = triggers_by_event()
    waited = set(
        name
        for names in Enrollment.objects.filter(customer_id__in=customer_ids, status=Enrollment.Status.ACTIVE)
        .exclude(waiting_events=[])
        .values_list("waiting_events", flat=True)
        for name in names
    )
    names = set(triggers) | waited
    if not names:
        return 0, 0
    events = list(
        Event.objects.filter(
            customer_id__in=customer_ids,
            name__in=names,
            received_at__gte=now - LOOKBACK,
            timestamp__gte=now - LOOKBACK - dt.timedelta(days=1),
        )
        .order_by("id")
        .values_list("id", "customer_id", "name", "timestamp", "received_at", "properties")
    )
    if not events:
        return 0, 0
    with transaction.atomic():  # one commit for the entries, the woken waits and the mark
        enrolled = enrollments_start(entries=_entries(events, triggers), now=now) if triggers else []
        woken = _waits_wake([event for event in events if event[2] in waited], now) if waited else []
        _matched_through(events)
    enrollments_run(ids=sorted(set(enrolled) | set(woken)))
    return len(enrolled), len(woken)


# Customers one matching pass takes from the pending requests.
MATCH_REQUESTS_PER_PASS = 2000


def match_request(customer_ids: list[int]) -> None:
    """Asks for these customers' new events to be matched; asking twice before a task looks is once."""
    if not customer_ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO journeys_matchrequest (customer_id, requested_at)
            SELECT id, now() FROM unnest(%s::bigint[]) AS x(id) ORDER BY id
            ON CONFLICT (customer_id) DO NOTHING
            """,
            [id_array(set(customer_ids))],
        )


def match_requests_take(*, limit: int = MATCH_REQUESTS_PER_PASS) -> tuple[int, int]:
    """Matches every pending request, a pass of customers at a time (requests another task holds
    are skipped). A pass's requests are taken in a commit of their own before matching: a worker
    killed while matching leaves its events to the sweep, which finds them by id. (enrolled, woken)."""
    enrolled = woken = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                """
                DELETE FROM journeys_matchrequest WHERE customer_id IN (
                    SELECT customer_id FROM journeys_matchrequest
                    ORDER BY customer_id LIMIT %s FOR UPDATE SKIP LOCKED)
                RETURNING customer_id
                """,
                [limit],
            )
            customer_ids = sorted(row[0] for row in cursor.fetchall())
        if customer_ids:
            started, ended = events_match(customer_ids=customer_ids)
            enrolled, woken = enrolled + started, woken + ended
        if len(customer_ids) < limit:
            return enrolled, woken


def _matched_through(events: list[tuple]) -> None:
    """Notes the newest event looked at per customer, for the sweep of lost matching tasks."""
    newest: dict[int, int] = {}
    for event_id, customer_id, *_rest in events:
        newest[customer_id] = max(event_id, newest.get(customer_id, 0))
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO journeys_matchedthrough (customer_id, event_id)
            SELECT customer_id, event_id
            FROM json_to_recordset(%s::json) AS r(customer_id bigint, event_id bigint)
            ORDER BY customer_id
            ON CONFLICT (customer_id) DO UPDATE
            SET event_id = GREATEST(journeys_matchedthrough.event_id, EXCLUDED.event_id)
            """,
            [json_rows("customer_id event_id", sorted(newest.items()))],
        )


# -- the sweep for lost matching tasks -------------------------------------------------------------

# An event's own matching task normally runs within a second of its commit; the sweep looks only at
# events older than this, so it does not race the task (and sees ingest transactions committed late).
LOST_GRACE = dt.timedelta(seconds=30)
LOST_SWEEP_ROWS = 20_000
LOST_SWEEP_LOCK = 0x4A0F
LOST_CURSOR = "lost_events"


def _lost_customers(rows: list[tuple], triggers: dict) -> set[int]:
    """Of these events, the customers whose trigger events matching never looked at, or who still wait
    for one of them."""
    # Segment entries and exits have a sweep of their own (they never had a task).
    started = [
        (event_id, customer_id)
        for event_id, customer_id, name, _at in rows
        if name in triggers and name not in SWEPT_EVENTS
    ]
    lost: set[int] = set()
    if started:
        marks = dict(
            MatchedThrough.objects.filter(customer_id__in={c for _e, c in started}).values_list(
                "customer_id", "event_id"
            )
        )
        lost |= {customer_id for event_id, customer_id in started if event_id > marks.get(customer_id, 0)}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT DISTINCT e.customer_id FROM journeys_enrollment AS e
            JOIN json_to_recordset(%s::json) AS r(customer_id bigint, name text, received_at timestamptz)
              ON r.customer_id = e.customer_id
            WHERE e.status = 'active' AND e.waiting_events <> '{}' AND r.name = ANY(e.waiting_events)
              AND r.received_at >= (e.waiting_match->>'since')::timestamptz
            """,
            [json_rows("customer_id name received_at", [(c, name, at) for _e, c, name, at in rows])],
        )
        lost |= {row[0] for row in cursor.fetchall()}
    return lost


def lost_events_sweep(*, now: dt.datetime | None = None, budget_seconds: float = 5.0) -> int:
    """Events whose matching task was lost (a worker killed after the ingest committed; the broker
    redelivers only after its visibility timeout) start and wake their journeys here: the beat's tick
    reads new events by id, and matches again the customers with a trigger event matching never saw
    or with a wait such an event should have ended. Returns how many customers it matched again."""
    now = now or timezone.now()
    deadline = time.monotonic() + budget_seconds
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOST_SWEEP_LOCK])
        if not cursor.fetchone()[0]:
            return 0  # another worker sweeps
    try:
        cursor_row = SweepCursor.objects.filter(name=LOST_CURSOR).first()
        if cursor_row is None:
            # The first sweep starts from now: what came before had its tasks (or the broker's redelivery).
            newest = Event.objects.aggregate(newest=Max("id"))["newest"] or 0
            SweepCursor.objects.create(name=LOST_CURSOR, swept_until=now, swept_through_id=newest)
            return 0
        after, matched = cursor_row.swept_through_id, 0
        triggers = triggers_by_event()
        while time.monotonic() < deadline:
            rows = list(
                Event.objects.filter(id__gt=after)
                .order_by("id")
                .values_list("id", "customer_id", "name", "received_at")[:LOST_SWEEP_ROWS]
            )
            settled = list(itertools.takewhile(lambda row: row[3] < now - LOST_GRACE, rows))
            if not settled:
                break
            lost = sorted(_lost_customers(settled, triggers))
            for start in range(0, len(lost), 500):
                events_match(customer_ids=lost[start : start + 500], now=now)
            matched += len(lost)
            after = settled[-1][0]
            SweepCursor.objects.filter(name=LOST_CURSOR).update(swept_through_id=after, swept_until=now)
            if len(settled) < len(rows) or len(rows) < LOST_SWEEP_ROWS:
                break
        return matched
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [LOST_SWEEP_LOCK])


def segment_events_sweep(*, now: dt.datetime | None = None) -> int:
    """Segment entries and exits since the last sweep start the triggers waiting for them."""
    now = now or timezone.now()
    triggers = triggers_by_event()
    names = [name for name in SWEPT_EVENTS if name in triggers]
    if not names:
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO journeys_sweepcursor (name, swept_until) VALUES ('segment_events', %s)
            ON CONFLICT (name) DO UPDATE SET swept_until = journeys_sweepcursor.swept_until
            RETURNING swept_until
            """,
            [now - SWEEP_OVERLAP],
        )
        since = cursor.fetchone()[0] - SWEEP_OVERLAP
        cursor.execute(
            "UPDATE journeys_sweepcursor SET swept_until = %s WHERE name = 'segment_events'", [now]
        )
        events = list(
            Event.objects.filter(name__in=names, timestamp__gte=since, timestamp__lte=now)
            .order_by("id")
            .values_list("id", "customer_id", "name", "timestamp", "received_at", "properties")
        )
        enrolled = enrollments_start(entries=_entries(events, triggers), now=now)
    enrollments_run(ids=enrolled)
    return len(enrolled)
