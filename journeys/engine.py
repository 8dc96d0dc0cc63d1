"""The engine: runs due enrollments, step by step, until each waits again.

A beat tick (``journeys.tasks.engine_tick``) claims due enrollments in batches with
``SELECT ... FOR UPDATE SKIP LOCKED``, so any number of workers share the work and no two run the same
enrollment. Delays are rows with a ``wake_at``, never Celery ETAs (which duplicate on Redis past the
visibility timeout). Each visit to a node is a ``Step``, unique per (enrollment, node, visit): a
replay finds the step and follows the outcome it recorded instead of doing the work again. A node that
cannot run (its type no longer exists, its config no longer parses, what it names is gone) fails that
one enrollment with the reason.

A claimed batch moves together, one node at a time: the enrollments at the same node of the same
version enter it together (``NodeType.enter_many``: one outbox insert for a batch's sends, one query
for a condition's branch), and their steps are written in one statement. Nodes that write insert
their steps before their work, in a savepoint with it, so a replay (the unique key already taken)
never runs the work twice; nodes that only read decide first and record step and outcome in one
insert, a replay taking the recorded outcome over the one just decided.

Calls that leave the product (a webhook node) are not made in a batch: the node waits
(``call_pending``), the batch commits, and ``journeys.calls`` makes the calls with no transaction
open and within a time budget; the next batch resumes those enrollments with the answers.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from cdp.sqlvalues import id_array, json_rows
from journeys.calls import calls_run, pending_calls
from journeys.models import Enrollment, Journey, JourneyVersion
from journeys.nodes.base import End, Follow, NodeConfig, NodeFailed, NodeType, StepContext, Wait
from journeys.realtime import journeys_moved
from journeys.validation import edge_handle, graph_parse

log = logging.getLogger(__name__)

CLAIM_BATCH = 500
# Steps one enrollment may take in one run: a loop without a wait cannot hold a worker; the rest
# runs on the next tick.
MAX_STEPS_PER_RUN = 50
# Node types whose work writes nothing: their steps are written after the decision, with it (a
# replay's recorded outcome then wins over the one just decided, which cost nothing to throw away).
PURE_NODE_TYPES = {
    "event_trigger",
    "segment_trigger",
    "tag_added_trigger",
    "scheduled_trigger",
    "form_submitted_trigger",
    "wechat_trigger",
    "api_trigger",
    "delay",
    "wait_for_event",
    "condition",
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


def _claim(*, limit: int, now: dt.datetime, ids: list[int] | None) -> list[Enrollment]:
    """Due enrollments of active journeys, locked (others skip them), with their customers: one
    statement. Not the versions: their graphs are parsed once per process, not once per row."""
    due = Enrollment.objects.filter(
        status=Enrollment.Status.ACTIVE, wake_at__lte=now, journey__status=Journey.Status.ACTIVE
    ).exclude(pending_calls())  # their calls are made outside the batch (journeys.calls)
    if ids is not None:
        due = due.extra(where=["journeys_enrollment.id = ANY(%s::bigint[])"], params=[id_array(ids)])
    claimed = (
        # The journey's priority comes with the row: groups of higher-priority journeys run first.
        due.annotate(journey_priority=F("journey__priority"))
        .select_related("customer")
        .defer("customer__traits_updated_at")
        .select_for_update(skip_locked=True, of=("self",))
        .order_by("wake_at")[:limit]
    )
    return sorted(claimed, key=lambda enrollment: enrollment.pk)


def tick(*, batch: int = CLAIM_BATCH, budget_seconds: float = 20.0) -> int:
    """Runs due enrollments, batch after batch, and makes their pending calls (outside the batches'
    transactions), until none is due or the budget is spent (the next tick goes on). Returns how
    many steps ran."""
    deadline = time.monotonic() + budget_seconds
    total = 0
    while True:
        claimed, steps = batch_run(limit=batch)
        total += steps
        answered = calls_run(budget_seconds=max(deadline - time.monotonic(), 0), limit=batch)
        if (claimed < batch and not answered) or time.monotonic() >= deadline:
            return total


# How long a run of just-enrolled (or woken) enrollments may spend starting their calls; the ones
# not reached are called by the engine's next tick.
ENROLLED_CALLS_BUDGET_SECONDS = 5.0


def enrollments_run(*, ids: list[int]) -> int:
    """Runs these enrollments now if they are due and free (just enrolled, or woken by an event),
    with their calls (when no transaction is open) and the steps after them."""
    total = 0
    for start in range(0, len(ids), CLAIM_BATCH):
        chunk = ids[start : start + CLAIM_BATCH]
        total += batch_run(limit=CLAIM_BATCH, ids=chunk)[1]
        if not transaction.get_connection().in_atomic_block and calls_run(
            budget_seconds=ENROLLED_CALLS_BUDGET_SECONDS, ids=chunk
        ):
            total += batch_run(limit=CLAIM_BATCH, ids=chunk)[1]
    return total


@transaction.atomic
def batch_run(*, limit: int, ids: list[int] | None = None, now: dt.datetime | None = None) -> tuple[int, int]:
    """Claims up to ``limit`` due enrollments and runs each until it waits; (claimed, steps)."""
    now = now or timezone.now()
    enrollments = _claim(limit=limit, now=now, ids=ids)
    if not enrollments:
        return 0, 0
    book = _StepBook(now)
    steps = _run_together(enrollments, now, book, memo={})
    book.flush()
    _enrollments_save(enrollments)
    moved = {enrollment.journey_id for enrollment in enrollments}
    transaction.on_commit(lambda: journeys_moved(moved), robust=True)
    return len(enrollments), steps


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


# -- steps -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Recorded:
    """A step found already written for a visit: its outcome ('' while it waited) and when it began."""

    outcome: str
    entered_at: dt.datetime


class _StepBook:
    """The steps a batch writes: inserted when entered (before a writing node's work), and the handle
    each left by, written once at the end of the batch."""

    def __init__(self, now: dt.datetime):
        self.now = now
        self.left: list[tuple] = []

    def insert(self, members: list[Enrollment], kind: NodeType, outcomes: list[tuple[str, str] | None]):
        """Inserts a step per enrollment at its node and visit, with its outcome when already decided
        (``(handle, reason)``; None while the node works or waits). Returns the visits whose step was
        there before (a replay), by enrollment id."""
        if not members:
            return {}
        rows = [
            (
                e.pk,
                e.journey_id,
                e.node_id,
                kind.key,
                e.visit,
                *(outcome or ("", "")),
                self.now if outcome else None,
            )
            for e, outcome in zip(members, outcomes, strict=True)
        ]
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO journeys_step (enrollment_id, journey_id, node_id, node_type, visit, outcome,
                                           reason, entered_at, left_at)
                SELECT enrollment_id, journey_id, node_id, node_type, visit, outcome, reason, %s, left_at
                FROM json_to_recordset(%s::json) AS r(enrollment_id bigint, journey_id bigint, node_id text,
                     node_type text, visit int, outcome text, reason text, left_at timestamptz)
                ORDER BY enrollment_id
                ON CONFLICT (enrollment_id, node_id, visit) DO NOTHING
                RETURNING enrollment_id
                """,
                [
                    self.now,
                    json_rows(
                        "enrollment_id journey_id node_id node_type visit outcome reason left_at", rows
                    ),
                ],
            )
            written = {row[0] for row in cursor.fetchall()}
            if len(written) == len(members):
                return {}
            before = [e for e in members if e.pk not in written]
            cursor.execute(
                """
                SELECT s.enrollment_id, s.outcome, s.entered_at FROM journeys_step AS s
                JOIN json_to_recordset(%s::json) AS r(enrollment_id bigint, node_id text, visit int)
                  ON s.enrollment_id = r.enrollment_id AND s.node_id = r.node_id AND s.visit = r.visit
                """,
                [json_rows("enrollment_id node_id visit", [(e.pk, e.node_id, e.visit) for e in before])],
            )
            return {
                enrollment_id: _Recorded(outcome, entered_at) for enrollment_id, outcome, entered_at in cursor
            }

    def leave(self, enrollment: Enrollment, node_id: str, visit: int, outcome: str, reason: str) -> None:
        self.left.append((enrollment.pk, node_id, visit, outcome, reason[:2000], self.now))

    def flush(self) -> None:
        """The handle each step left by; a step that already has one (a replay) keeps it."""
        if not self.left:
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
                [json_rows("enrollment_id node_id visit outcome reason left_at", self.left)],
            )
        self.left = []


def _decided(result) -> tuple[str, str] | None:
    """The outcome a step records at once: the handle it leaves by, or None while it waits."""
    if isinstance(result, Follow):
        return result.handle, result.reason[:2000]
    if isinstance(result, End):
        return END_OUTCOME, (result.reason or "")[:2000]
    return None


# -- running a batch -------------------------------------------------------------------------------

Outcome = Follow | Wait | End | Exception


def _context(enrollment: Enrollment, config: NodeConfig, now: dt.datetime, memo: dict) -> StepContext:
    return StepContext(
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


def _together(many, one, ctxs: list[StepContext], *, before=None) -> list[Outcome]:
    """``many`` over all the contexts in a savepoint (with ``before(ctxs)`` first); if it raises,
    ``one`` over each context alone, each in its own savepoint, so only the enrollment whose node
    cannot run fails. (A savepoint per group, not per enrollment: even a node that only reads may
    hit an error that would otherwise abort the whole batch's transaction.)"""
    try:
        with transaction.atomic():
            if before is not None:
                before(ctxs)
            outcomes = many(ctxs)
        if len(outcomes) != len(ctxs):
            raise RuntimeError(f"{len(outcomes)} outcomes for {len(ctxs)} enrollments")
        return outcomes
    except Exception as error:
        if len(ctxs) == 1:
            return [error]
    outcomes = []
    for ctx in ctxs:
        try:
            with transaction.atomic():
                if before is not None:
                    before([ctx])
                outcomes.append(one(ctx))
        except Exception as error:
            outcomes.append(error)
    return outcomes


def _replayed(kind: NodeType, ctx: StepContext, recorded: _Recorded) -> Outcome:
    """A visit whose step was written before: follow what it decided, or ask again if it waited
    (since the step was entered; the wait's own limits read from the config)."""
    if recorded.outcome == END_OUTCOME:
        return End(reason="replayed")
    if recorded.outcome:
        return Follow(recorded.outcome, reason="replayed")
    ctx.waiting_match = {"since": recorded.entered_at.isoformat(), "until": None, "value": None}
    try:
        with transaction.atomic():
            return kind.resume(ctx)
    except Exception as error:
        return error


class _PartFailed(Exception):
    """Some enrollments of a group failed: the group runs again one by one, so theirs leave no step."""


def _visit_group(
    kind: NodeType, members: list[Enrollment], config: NodeConfig, now: dt.datetime, book: _StepBook, memo
) -> tuple[list[Outcome], set[int]]:
    """The enrollments at one node of one version, in one phase, visit it together. Returns each one's
    outcome, and which of them already have their outcome written with their step."""
    ctxs = [_context(e, config, now, memo) for e in members]
    if members[0].phase == Enrollment.Phase.RESUME:
        return _together(kind.resume_many, kind.resume, ctxs), set()
    if kind.key in PURE_NODE_TYPES:
        outcomes = _together(kind.enter_many, kind.enter, ctxs)
        entered = [(e, o) for e, o in zip(members, outcomes, strict=True) if not isinstance(o, Exception)]
        replays = book.insert([e for e, _o in entered], kind, [_decided(o) for _e, o in entered])
        for index, enrollment in enumerate(members):
            if enrollment.pk in replays:
                outcomes[index] = _replayed(kind, ctxs[index], replays[enrollment.pk])
        return outcomes, {e.pk for e, _o in entered} - set(replays)
    replays: dict[int, _Recorded] = {}

    def steps_open(some: list[StepContext]) -> None:
        # In the work's savepoint: a node that fails leaves no step behind.
        replays.update(book.insert([ctx.enrollment for ctx in some], kind, [None] * len(some)))

    def enter_fresh(some: list[StepContext]) -> list[Outcome | None]:
        fresh = [ctx for ctx in some if ctx.enrollment.pk not in replays]
        done = iter(kind.enter_many(fresh) if fresh else [])
        outcomes = [None if ctx.enrollment.pk in replays else next(done) for ctx in some]
        if len(some) > 1 and any(isinstance(outcome, Exception) for outcome in outcomes):
            raise _PartFailed
        return outcomes

    def enter_one(ctx: StepContext) -> Outcome | None:
        return None if ctx.enrollment.pk in replays else kind.enter(ctx)

    outcomes = _together(enter_fresh, enter_one, ctxs, before=steps_open)
    for index, ctx in enumerate(ctxs):
        if ctx.enrollment.pk in replays and not isinstance(outcomes[index], Exception):
            outcomes[index] = _replayed(kind, ctx, replays[ctx.enrollment.pk])
    return outcomes, set()


def _finish(enrollment: Enrollment, status: str, reason: str, now: dt.datetime) -> None:
    enrollment.status, enrollment.reason, enrollment.finished_at = status, reason[:2000], now
    enrollment.wake_at, enrollment.waiting_events, enrollment.waiting_match, enrollment.woken_by = (
        None,
        [],
        {},
        None,
    )


def _failed(enrollment: Enrollment, error: Exception, now: dt.datetime) -> None:
    reason = str(error) if isinstance(error, NodeFailed) else f"{type(error).__name__}: {error}"
    if not isinstance(error, NodeFailed):
        log.error(
            "journey node %s of enrollment %s failed",
            enrollment.node_id,
            enrollment.pk,
            exc_info=(type(error), error, error.__traceback__),
        )
    _finish(enrollment, Enrollment.Status.FAILED, f"{enrollment.node_id}: {reason}", now)


def _waits(enrollment: Enrollment, result: Wait, now: dt.datetime) -> None:
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


def _moves_on(
    enrollment: Enrollment, result, graph: CompiledGraph, now: dt.datetime, book: _StepBook, *, written: bool
) -> bool:
    """Applies a node's answer to the enrollment (``written``: its step holds the outcome already);
    whether it goes on to another node now."""
    node_id, visit = enrollment.node_id, enrollment.visit
    if isinstance(result, Exception):
        _failed(enrollment, result, now)
        return False
    if isinstance(result, Wait):
        _waits(enrollment, result, now)
        return False
    if not written:
        book.leave(enrollment, node_id, visit, *_decided(result))
    if isinstance(result, End):
        _finish(enrollment, Enrollment.Status.COMPLETED, result.reason or "end", now)
        return False
    target = graph.next.get((node_id, result.handle))
    if target is None:
        _finish(enrollment, Enrollment.Status.COMPLETED, f"left {node_id} by {result.handle}", now)
        return False
    visits = dict(enrollment.visits or {})
    visits[target] = visits.get(target, 0) + 1
    enrollment.visits, enrollment.node_id, enrollment.visit = visits, target, visits[target]
    enrollment.phase, enrollment.wake_at = Enrollment.Phase.ENTER, now
    enrollment.waiting_events, enrollment.waiting_match, enrollment.woken_by = [], {}, None
    return True


def _run_together(enrollments: list[Enrollment], now: dt.datetime, book: _StepBook, memo: dict) -> int:
    """Moves the batch node by node until each enrollment waits, ends, or has taken its steps for
    this run; returns how many node visits ran."""
    steps = 0
    moving = enrollments
    for _ in range(MAX_STEPS_PER_RUN):
        if not moving:
            break
        groups: dict[tuple[int, str, str], list[Enrollment]] = {}
        for enrollment in moving:
            graph = graph_compiled(enrollment.version_id)
            if enrollment.node_id not in graph.nodes:
                reason = (
                    graph.broken.get(enrollment.node_id)
                    or f"the node {enrollment.node_id} is not in the version {enrollment.version_id}"
                )
                _finish(enrollment, Enrollment.Status.FAILED, reason, now)
                continue
            groups.setdefault((enrollment.version_id, enrollment.node_id, enrollment.phase), []).append(
                enrollment
            )
        moving = []
        # Higher-priority journeys first: their sends count first against the contact policy's caps.
        ordered = sorted(groups.items(), key=lambda group: -group[1][0].journey_priority)
        for (version_id, node_id, _phase), members in ordered:
            graph = graph_compiled(version_id)
            kind, config = graph.nodes[node_id]
            outcomes, written = _visit_group(kind, members, config, now, book, memo)
            for enrollment, result in zip(members, outcomes, strict=True):
                if not isinstance(result, Exception):
                    steps += 1
                if _moves_on(enrollment, result, graph, now, book, written=enrollment.pk in written):
                    moving.append(enrollment)
    return steps  # those still moving are due: the next tick goes on
