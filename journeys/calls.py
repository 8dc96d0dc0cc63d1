"""Calls that leave the product (a webhook node's POST), made outside the engine's transaction.

A node whose work is a call enters by waiting (``call_pending``): its step is written with the
batch, and the batch commits without waiting for anyone. Then ``calls_run`` takes those enrollments
with a lease (their ``wake_at`` moved past the calls' end, committed at once, so neither the engine
nor another worker takes them meanwhile), makes the calls a few at a time with no transaction open,
and writes each answer on its enrollment as it comes (``woken_by = {"call": ...}``, due now): the
engine's next batch resumes them and follows the handle. No call starts once the time budget is
spent; the enrollments not reached wait a short while and are taken by the next round. A worker that
dies during a call leaves its lease to run out, and the call is made again with the same
``Idempotency-Key`` (at least once, never lost), as before.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from journeys.models import Enrollment, Journey
from journeys.nodes.base import CALL_PENDING, Follow

log = logging.getLogger(__name__)

# Calls made at once by one worker.
CONCURRENCY = 8
# The longest a node's call may last (a webhook's timeout is at most 30 s), with room to record it.
CALL_SECONDS_MAX = 30
LEASE_MARGIN_SECONDS = 30
# Customers not reached within a round's budget are taken again this soon.
RETRY_WAKE_SECONDS = 2


def pending_calls() -> Q:
    """Enrollments whose call is still to be made (the engine's claim leaves them to ``calls_run``)."""
    return Q(
        phase=Enrollment.Phase.RESUME,
        waiting_match__contains={"property": CALL_PENDING},
        woken_by__isnull=True,
    )


def _take(*, limit: int, now: dt.datetime, budget_seconds: float, ids: list[int] | None) -> list[Enrollment]:
    lease_until = now + dt.timedelta(seconds=budget_seconds + CALL_SECONDS_MAX + LEASE_MARGIN_SECONDS)
    with transaction.atomic():
        due = Enrollment.objects.filter(
            pending_calls(),
            status=Enrollment.Status.ACTIVE,
            wake_at__lte=now,
            journey__status=Journey.Status.ACTIVE,
        )
        if ids is not None:
            due = due.filter(pk__in=ids)
        taken = list(
            due.select_related("customer")
            .defer("customer__traits_updated_at")
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("wake_at")[:limit]
        )
        Enrollment.objects.filter(pk__in=[e.pk for e in taken]).update(wake_at=lease_until)
    return taken


def _answer_write(enrollment: Enrollment, result: Follow) -> None:
    """The call's answer on its enrollment, due now, if it still waits at that node and visit."""
    Enrollment.objects.filter(
        pending_calls(),
        pk=enrollment.pk,
        node_id=enrollment.node_id,
        visit=enrollment.visit,
        status=Enrollment.Status.ACTIVE,
    ).update(
        woken_by={"call": {"handle": result.handle, "reason": result.reason[:2000]}},
        wake_at=timezone.now(),
    )


def calls_run(
    *, budget_seconds: float, limit: int = 500, ids: list[int] | None = None, now: dt.datetime | None = None
) -> int:
    """Makes the pending calls (of these enrollments, or any) until none is left or the budget is
    spent; returns how many answers were written. Must run outside any transaction."""
    from journeys.engine import _context, graph_compiled

    if transaction.get_connection().in_atomic_block:
        raise RuntimeError("calls_run holds no transaction while it calls: call it outside one")
    if budget_seconds <= 0:
        return 0
    now = now or timezone.now()
    deadline = time.monotonic() + budget_seconds
    taken = _take(limit=limit, now=now, budget_seconds=budget_seconds, ids=ids)
    if not taken:
        return 0
    memo: dict = {}
    queue = list(taken)
    running: dict[Future, Enrollment] = {}
    answered = 0
    with ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="journey-call") as pool:
        while queue or running:
            while queue and len(running) < CONCURRENCY and time.monotonic() < deadline:
                enrollment = queue.pop(0)
                graph = graph_compiled(enrollment.version_id)
                if enrollment.node_id not in graph.nodes:  # the engine fails it with the reason
                    _answer_write(enrollment, Follow("failed", reason="the node is gone"))
                    continue
                kind, config = graph.nodes[enrollment.node_id]
                ctx = _context(enrollment, config, now, memo)
                running[pool.submit(kind.call_outside, ctx)] = enrollment
            if not running:
                break
            done, _pending = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                enrollment = running.pop(future)
                try:
                    result = future.result()
                except Exception as error:  # the node's own failure: it leaves by "failed", with why
                    log.exception("journey call of enrollment %s failed", enrollment.pk)
                    result = Follow("failed", reason=f"{type(error).__name__}: {error}")
                _answer_write(enrollment, result)
                answered += 1
    if queue:  # the budget is spent: the others go to the next round, soon
        Enrollment.objects.filter(pending_calls(), pk__in=[e.pk for e in queue]).update(
            wake_at=timezone.now() + dt.timedelta(seconds=RETRY_WAKE_SECONDS)
        )
    return answered
