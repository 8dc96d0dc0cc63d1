"""Scheduled audiences: at a moment, or every day or week at a time of day, a segment's members
enter a journey, set-based (``INSERT ... SELECT`` from the segment's membership), under the journey's
entry policy.

The beat's tick starts each due occurrence once (a ``ScheduledRun``, unique per journey, trigger node
and occurrence, so two beats start it once), then enrolls the members in chunks in customer id order,
each chunk committed with how far it got: a worker killed mid-run leaves the rest to the next tick.
Members enter past their trigger (its step written with them), due at once, so the engine's next
batches go straight on to the first sends.
"""

from __future__ import annotations

import datetime as dt
import time

from django.db import connection, transaction
from django.utils import timezone

from cdp import json_codec
from journeys.engine import graph_compiled
from journeys.models import Journey, JourneyVersion, ScheduledRun
from journeys.nodes.base import DEFAULT_HANDLE

SCHEDULED_TYPE = "scheduled_trigger"
# Members enrolled per transaction: big enough that a million take a few dozen statements, small
# enough that the engine starts on the first chunk's sends while the next is written.
ENROLL_CHUNK = 50_000
# A chunk this big changes the enrollments table enough to refresh its statistics at once.
ANALYZE_AFTER = 10_000
# The advisory lock class enrollments_start takes for a journey's cooldown check.
COOLDOWN_LOCK = 0x4A0E


def scheduled_runs_start(*, now: dt.datetime) -> list[ScheduledRun]:
    """Starts every occurrence of a scheduled trigger (of active journeys' latest versions) that came
    due and has not been started; returns the runs started now."""
    latest = (
        JourneyVersion.objects.filter(
            journey__status=Journey.Status.ACTIVE, graph__nodes__contains=[{"type": SCHEDULED_TYPE}]
        )
        .order_by("journey_id", "-number")
        .distinct("journey_id")
        .only("id", "journey_id", "published_at")
    )
    started = []
    for version in latest:
        for node_id, (kind, config) in graph_compiled(version.pk).nodes.items():
            if kind.key != SCHEDULED_TYPE:
                continue
            occurrence = config.occurrence(now=now, since=version.published_at)
            if occurrence is None:
                continue
            run, created = ScheduledRun.objects.get_or_create(
                journey_id=version.journey_id,
                node_id=node_id,
                occurrence=occurrence,
                defaults={"version_id": version.pk, "segment_key": config.segment, "started_at": now},
            )
            if created:
                started.append(run)
    return started


def _entry_key(journey: Journey, occurrence: dt.datetime) -> str:
    if journey.entry_policy == Journey.EntryPolicy.ONCE:
        return "once"
    # Every occurrence is an entry of its own (for "once per key", the occurrence is the key).
    prefix = "key" if journey.entry_policy == Journey.EntryPolicy.ONCE_PER_KEY else "at"
    return f"{prefix}:scheduled:{occurrence.isoformat()}"


def _chunk_enroll(
    run: ScheduledRun, journey: Journey, now: dt.datetime, chunk: int
) -> tuple[int, int | None]:
    """Enrolls the next chunk of the run's segment members; (how many entered, the last member id
    looked at, None when no member was left)."""
    graph = graph_compiled(run.version_id)
    target = graph.next.get((run.node_id, DEFAULT_HANDLE))
    cooldown = journey.entry_policy == Journey.EntryPolicy.AFTER_COOLDOWN
    with connection.cursor() as cursor:
        if cooldown:
            # Event entries and this run check the cooldown one after the other.
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [COOLDOWN_LOCK, journey.pk])
        cursor.execute(
            f"""
            WITH chosen AS (
                SELECT m.customer_id FROM segments_segmentmember AS m
                JOIN segments_segment AS s ON s.id = m.segment_id AND s.key = %(segment)s
                WHERE m.customer_id > %(after)s
                ORDER BY m.customer_id LIMIT %(chunk)s
            ), eligible AS (
                SELECT chosen.customer_id FROM chosen
                JOIN cdp_customer AS c ON c.id = chosen.customer_id AND c.merged_into_id IS NULL
                {
                '''WHERE NOT EXISTS (
                    SELECT 1 FROM journeys_enrollment AS e
                    WHERE e.journey_id = %(journey)s AND e.customer_id = chosen.customer_id
                      AND (e.status = 'active' OR e.enrolled_at >= %(cooled)s)
                )'''
                if cooldown
                else ""
            }
            ), entered AS (
                INSERT INTO journeys_enrollment (journey_id, version_id, customer_id, entry_key, node_id,
                    visit, visits, phase, status, wake_at, waiting_events, waiting_match, context, reason,
                    enrolled_at, finished_at)
                SELECT %(journey)s, %(version)s, customer_id, %(entry_key)s, %(node)s, 1,
                       %(visits)s::jsonb, 'enter', %(status)s, %(wake_at)s, '{{}}', '{{}}'::jsonb,
                       %(context)s::jsonb, %(reason)s, %(now)s, %(finished_at)s
                FROM eligible ORDER BY customer_id
                ON CONFLICT (journey_id, customer_id, entry_key) DO NOTHING
                RETURNING id
            ), stepped AS (
                INSERT INTO journeys_step (enrollment_id, journey_id, node_id, node_type, visit, outcome,
                                           reason, entered_at, left_at)
                SELECT id, %(journey)s, %(trigger)s, %(type)s, 1, %(handle)s, %(step_reason)s, %(now)s,
                       %(now)s
                FROM entered
            )
            SELECT (SELECT count(*) FROM entered), (SELECT max(customer_id) FROM chosen)
            """,  # noqa: S608 (only a fixed fragment is formatted in)
            {
                "segment": run.segment_key,
                "after": run.after_customer_id,
                "chunk": chunk,
                "journey": journey.pk,
                "cooled": now - dt.timedelta(seconds=journey.cooldown_seconds or 0),
                "version": run.version_id,
                "entry_key": _entry_key(journey, run.occurrence),
                "node": target or run.node_id,
                "visits": json_codec.dumps_text({run.node_id: 1, **({target: 1} if target else {})}),
                "status": "active" if target else "completed",
                "wake_at": now if target else None,
                "context": json_codec.dumps_text(
                    {"scheduled_at": run.occurrence.isoformat(), "segment": run.segment_key}
                ),
                "reason": "" if target else f"left {run.node_id} by {DEFAULT_HANDLE}",
                "now": now,
                "finished_at": None if target else now,
                "trigger": run.node_id,
                "type": SCHEDULED_TYPE,
                "handle": DEFAULT_HANDLE if target else "end",
                "step_reason": f"scheduled for {run.occurrence.isoformat()}",
            },
        )
        return cursor.fetchone()


def scheduled_runs_continue(
    *, now: dt.datetime | None = None, budget_seconds: float = 20.0, chunk: int = ENROLL_CHUNK
) -> int:
    """Enrolls the next chunks of open runs, one transaction per chunk, until none is left or the
    budget is spent; returns how many customers entered."""
    deadline = time.monotonic() + budget_seconds
    total = 0
    while True:  # at least one chunk, however short the budget
        with transaction.atomic():
            # A paused journey's run waits for it to resume (an archived one's never goes on).
            run = (
                ScheduledRun.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(finished_at=None, journey__status=Journey.Status.ACTIVE)
                .order_by("started_at", "id")
                .first()
            )
            if run is None:
                return total
            journey = Journey.objects.get(pk=run.journey_id)
            moment = now or timezone.now()
            entered, last = _chunk_enroll(run, journey, moment, chunk)
            total += entered
            ScheduledRun.objects.filter(pk=run.pk).update(
                after_customer_id=last or run.after_customer_id,
                enrolled=run.enrolled + entered,
                finished_at=None if last is not None else moment,
            )
        if entered >= ANALYZE_AFTER:
            # The planner's statistics of a table that just grew by tens of thousands of due rows
            # still say it has few: the engine's claim would sort every due row to take 500.
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE journeys_enrollment")
        if time.monotonic() >= deadline:
            return total


def scheduled_audiences_enroll(*, now: dt.datetime | None = None, budget_seconds: float = 20.0) -> int:
    """The beat's part: due occurrences start, open runs go on. Returns how many customers entered."""
    scheduled_runs_start(now=now or timezone.now())
    return scheduled_runs_continue(now=now, budget_seconds=budget_seconds)
