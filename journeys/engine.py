"""The engine: runs due enrollments, step by step, until each waits again.

A beat tick (``journeys.tasks.engine_tick``) claims due enrollments in batches with
``SELECT ... FOR UPDATE SKIP LOCKED``, so any number of workers share the work and no two run the same
enrollment. Delays are rows with a ``wake_at``, never Celery ETAs (which duplicate on Redis past the
visibility timeout). Each visit to a node is a ``Step`` inserted before the node's work, in the same
transaction, unique per (enrollment, node, visit): a replay finds the step and follows the outcome it
recorded instead of doing the work again. A node that cannot run (its type no longer exists, its
config no longer parses, what it names is gone) fails that one enrollment with the reason.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from cdp.sqlvalues import id_array, json_rows
from journeys.models import Enrollment, JourneyVersion
from journeys.nodes.base import End, Follow, NodeConfig, NodeFailed, NodeType, StepContext, Wait
from journeys.realtime import journeys_moved
from journeys.validation import edge_handle, graph_parse

log = logging.getLogger(__name__)

CLAIM_BATCH = 200
# Steps one enrollment may take in one run: a loop without a wait cannot hold a worker; the rest
# runs on the next tick.
MAX_STEPS_PER_RUN = 50
# Node types whose work touches nothing in the database that can fail: they run without a savepoint.
# Resuming a wait only reads, so it never needs one either.
PURE_NODE_TYPES = {
    "event_trigger",
    "segment_trigger",
    "tag_added_trigger",
    "delay",
    "wait_for_event",
    "random_split",
    "exit",
    "goal",
}
END_OUTCOME = "end"


@dataclass(frozen=True)
class CompiledGraph:
    nodes: dict[str, tuple[NodeType, NodeConfig]]
    # Why a node of the version cannot run (its type is gone, its config no longer parses).
    broken: dict[str, str]
    next: dict[tuple[str, str], str]


_compiled: dict[int, CompiledGraph] = {}


def graph_compiled(version: JourneyVersion | int) -> CompiledGraph:
    """A version's graph, parsed once per process (versions never change)."""
    version_id = version if isinstance(version, int) else version.pk
    compiled = _compiled.get(version_id)
    if compiled is None:
        graph = version.graph if isinstance(version, JourneyVersion) else _version_graph(version_id)
        nodes, edges, problems = graph_parse(graph)
        broken: dict[str, str] = {}
        for problem in problems:
            if problem["node"] and problem["node"] not in nodes:
                broken.setdefault(problem["node"], f"{problem['field']}: {problem['message']}")
        compiled = CompiledGraph(
            nodes=nodes,
            broken=broken,
            next={(edge["source"], edge_handle(edge)): edge["target"] for edge in edges},
        )
        _compiled[version_id] = compiled
    return compiled


def _version_graph(version_id: int) -> dict:
    return JourneyVersion.objects.values_list("graph", flat=True).get(pk=version_id)


# -- claiming --------------------------------------------------------------------------------------


def _claim(*, limit: int, now: dt.datetime, ids: list[int] | None) -> list[int]:
    only = "AND e.id = ANY(%s::bigint[])" if ids is not None else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT e.id FROM journeys_enrollment AS e
            JOIN journeys_journey AS j ON j.id = e.journey_id AND j.status = 'active'
            WHERE e.status = 'active' AND e.wake_at <= %s {only}
            ORDER BY e.wake_at
            LIMIT %s
            FOR UPDATE OF e SKIP LOCKED
            """,  # noqa: S608 (only a fixed fragment is formatted in)
            [now, *([id_array(ids)] if ids is not None else []), limit],
        )
        return [row[0] for row in cursor.fetchall()]


def tick(*, batch: int = CLAIM_BATCH, budget_seconds: float = 20.0) -> int:
    """Runs due enrollments, batch after batch, until none is due or the budget is spent (the next
    tick goes on). Returns how many steps ran."""
    deadline = time.monotonic() + budget_seconds
    total = 0
    while True:
        claimed, steps = batch_run(limit=batch)
        total += steps
        if claimed < batch or time.monotonic() >= deadline:
            return total


def enrollments_run(*, ids: list[int]) -> int:
    """Runs these enrollments now if they are due and free (just enrolled, or woken by an event)."""
    total = 0
    for start in range(0, len(ids), CLAIM_BATCH):
        total += batch_run(limit=CLAIM_BATCH, ids=ids[start : start + CLAIM_BATCH])[1]
    return total


@transaction.atomic
def batch_run(*, limit: int, ids: list[int] | None = None, now: dt.datetime | None = None) -> tuple[int, int]:
    """Claims up to ``limit`` due enrollments and runs each until it waits; (claimed, steps)."""
    now = now or timezone.now()
    claimed = _claim(limit=limit, now=now, ids=ids)
    if not claimed:
        return 0, 0
    enrollments = list(
        # Not the versions: their graphs are parsed once per process, not once per row.
        Enrollment.objects.filter(pk__in=claimed).select_related("customer").order_by("pk")
    )
    left: list[tuple] = []
    memo: dict = {}  # what the batch's nodes look up once for all its enrollments
    steps = sum(_enrollment_run(enrollment, now, left, memo) for enrollment in enrollments)
    _steps_leave(left)
    _enrollments_save(enrollments)
    moved = {enrollment.journey_id for enrollment in enrollments}
    transaction.on_commit(lambda: journeys_moved(moved), robust=True)
    return len(claimed), steps


def _enrollments_save(enrollments: list[Enrollment]) -> None:
    """Where each enrollment is now, in one statement (Django's bulk_update costs more than the run)."""
    fields = [
        "node_id",
        "visit",
        "visits",
        "phase",
        "status",
        "wake_at",
        "waiting_events",
        "waiting_match",
        "woken_by",
        "reason",
        "goal_reached_at",
        "finished_at",
    ]
    rows = [(e.pk, *(getattr(e, name) for name in fields)) for e in enrollments]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE journeys_enrollment AS e SET node_id = r.node_id, visit = r.visit, visits = r.visits,
                phase = r.phase, status = r.status, wake_at = r.wake_at,
                waiting_events = ARRAY(SELECT jsonb_array_elements_text(r.waiting_events)),
                waiting_match = r.waiting_match,
                woken_by = r.woken_by, reason = r.reason, goal_reached_at = r.goal_reached_at,
                finished_at = r.finished_at
            FROM json_to_recordset(%s::json) AS r(id bigint, node_id text, visit int, visits jsonb,
                phase text, status text, wake_at timestamptz, waiting_events jsonb, waiting_match jsonb,
                woken_by jsonb, reason text, goal_reached_at timestamptz, finished_at timestamptz)
            WHERE e.id = r.id
            """,
            [json_rows(" ".join(["id", *fields]), rows)],
        )


# -- running one enrollment ------------------------------------------------------------------------


def _step_open(
    enrollment: Enrollment, kind: NodeType, now: dt.datetime
) -> tuple[bool, str | None, dt.datetime | None]:
    """Records the visit; (recorded now, and for a replayed visit the outcome it recorded and when it
    was entered)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO journeys_step (enrollment_id, journey_id, node_id, node_type, visit, outcome, reason,
                                       entered_at)
            VALUES (%s, %s, %s, %s, %s, '', '', %s)
            ON CONFLICT (enrollment_id, node_id, visit) DO NOTHING
            RETURNING id
            """,
            [enrollment.pk, enrollment.journey_id, enrollment.node_id, kind.key, enrollment.visit, now],
        )
        if cursor.fetchone():
            return True, None, None
        cursor.execute(
            "SELECT outcome, entered_at FROM journeys_step"
            " WHERE enrollment_id = %s AND node_id = %s AND visit = %s",
            [enrollment.pk, enrollment.node_id, enrollment.visit],
        )
        outcome, entered_at = cursor.fetchone()
        return False, outcome or None, entered_at


def _steps_leave(left: list[tuple]) -> None:
    """The handle each step left by; a step that already has one (a replay) keeps it."""
    if not left:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE journeys_step AS s SET outcome = r.outcome, reason = r.reason, left_at = r.left_at
            FROM json_to_recordset(%s::json)
                 AS r(enrollment_id bigint, node_id text, visit int, outcome text, reason text,
                      left_at timestamptz)
            WHERE s.enrollment_id = r.enrollment_id AND s.node_id = r.node_id AND s.visit = r.visit
              AND s.outcome = ''
            """,
            [json_rows("enrollment_id node_id visit outcome reason left_at", left)],
        )


def _visit(enrollment: Enrollment, kind: NodeType, config: NodeConfig, now: dt.datetime, memo: dict):
    ctx = StepContext(
        memo=memo,
        enrollment=enrollment,
        customer=enrollment.customer,
        node_id=enrollment.node_id,
        visit=enrollment.visit,
        config=config,
        now=now,
        woken_by=enrollment.woken_by,
        waiting_match=enrollment.waiting_match or {},
    )
    if enrollment.phase == Enrollment.Phase.RESUME:
        return kind.resume(ctx)
    recorded_now, outcome, entered_at = _step_open(enrollment, kind, now)
    if recorded_now:
        return kind.enter(ctx)
    # A replay: this visit's work was done before; follow what it decided, or ask again if it waited
    # (since the step was entered, its wait's own limits read from the config).
    if outcome == END_OUTCOME:
        return End(reason="replayed")
    if outcome:
        return Follow(outcome, reason="replayed")
    ctx.waiting_match = {"since": entered_at.isoformat(), "until": None, "value": None}
    return kind.resume(ctx)


def _finish(enrollment: Enrollment, status: str, reason: str, now: dt.datetime) -> None:
    enrollment.status, enrollment.reason, enrollment.finished_at = status, reason[:2000], now
    enrollment.wake_at, enrollment.waiting_events, enrollment.waiting_match, enrollment.woken_by = (
        None,
        [],
        {},
        None,
    )


def _enrollment_run(enrollment: Enrollment, now: dt.datetime, left: list[tuple], memo: dict) -> int:
    graph = graph_compiled(enrollment.version_id)
    steps = 0
    for _ in range(MAX_STEPS_PER_RUN):
        node_id = enrollment.node_id
        node = graph.nodes.get(node_id)
        if node is None:
            reason = (
                graph.broken.get(node_id)
                or f"the node {node_id} is not in the version {enrollment.version_id}"
            )
            _finish(enrollment, Enrollment.Status.FAILED, reason, now)
            return steps
        kind, config = node
        pending: list[tuple] = []
        try:
            pure = kind.key in PURE_NODE_TYPES or enrollment.phase == Enrollment.Phase.RESUME
            with contextlib.nullcontext() if pure else transaction.atomic():
                result = _visit(enrollment, kind, config, now, memo)
        except Exception as error:
            reason = str(error) if isinstance(error, NodeFailed) else f"{type(error).__name__}: {error}"
            if not isinstance(error, NodeFailed):
                log.exception("journey node %s of enrollment %s failed", node_id, enrollment.pk)
            _finish(enrollment, Enrollment.Status.FAILED, f"{node_id}: {reason}", now)
            return steps
        steps += 1
        if isinstance(result, Wait):
            was_waiting = enrollment.phase == Enrollment.Phase.RESUME
            since = (enrollment.waiting_match or {}).get("since") if was_waiting else None
            enrollment.phase = Enrollment.Phase.RESUME
            enrollment.wake_at = result.until
            enrollment.waiting_events = list(result.events)
            enrollment.waiting_match = {
                "property": result.match_property,
                "value": result.match_value,
                "since": since or now.isoformat(),
                "until": result.until.isoformat() if result.until else None,
            }
            enrollment.woken_by = None
            return steps
        if isinstance(result, End):
            pending.append((enrollment.pk, node_id, enrollment.visit, END_OUTCOME, result.reason, now))
            left += pending
            _finish(enrollment, Enrollment.Status.COMPLETED, result.reason or "end", now)
            return steps
        pending.append((enrollment.pk, node_id, enrollment.visit, result.handle, result.reason[:2000], now))
        left += pending
        target = graph.next.get((node_id, result.handle))
        if target is None:
            _finish(enrollment, Enrollment.Status.COMPLETED, f"left {node_id} by {result.handle}", now)
            return steps
        visits = dict(enrollment.visits or {})
        visits[target] = visits.get(target, 0) + 1
        enrollment.visits, enrollment.node_id, enrollment.visit = visits, target, visits[target]
        enrollment.phase, enrollment.wake_at = Enrollment.Phase.ENTER, now
        enrollment.waiting_events, enrollment.waiting_match, enrollment.woken_by = [], {}, None
    return steps  # still due: the next tick goes on
