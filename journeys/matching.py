"""Arriving events meet journeys: they start the triggers they match and wake the waits for them.

Ingestion only queues a task with the customers' ids (``journeys.signals``); the task reads those
customers' recent events whose names an active trigger or a waiting enrollment cares about. Active
triggers are indexed by event name and kept per process until a journey changes status or is
published again. Reading an event twice is harmless: entries are unique per entry key, and a wait
woken once no longer waits.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max
from django.utils import timezone

from cdp.models import Event
from journeys.engine import enrollments_run, graph_compiled
from journeys.models import Enrollment, Journey, JourneyVersion
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
            if isinstance(kind, TriggerType):
                index[kind.trigger_event(config)].append(ActiveTrigger(version, node_id, kind, config))
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
    enrolled = enrollments_start(entries=_entries(events, triggers), now=now) if triggers else []
    woken = _waits_wake([event for event in events if event[2] in waited], now) if waited else []
    enrollments_run(ids=sorted(set(enrolled) | set(woken)))
    return len(enrolled), len(woken)


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
