"""Test mode: a journey (its draft or a published version) run for one chosen customer on a simulated
clock, by the engine's own run function, inside a transaction that is rolled back at the end.

Nothing of the run stays: not the enrollment, its steps, the messages, tags, traits or events it
wrote, not the draft's temporary version. Other workers never see the uncommitted rows, so the
customer's real enrollments go on undisturbed. Delays and waits pass at once unless the tester gives
an event that arrives earlier; messages go to the channel's sandbox in memory
(``connectors.simulation``), whose answers and receipts move the sends as real ones would; a webhook
is not called and leaves by the handle the tester chose (success unless told otherwise); a staff
task is closed with the outcome the tester chose, or times out.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from cdp.ingest import system_events_record
from cdp.models import Customer, Event
from cdp.redaction import redact_fields
from connectors.models import Message
from connectors.simulation import message_simulate
from journeys import engine
from journeys.models import (
    TEST_ENTRY_PREFIX,
    TEST_OUTCOMES_KEY,
    Enrollment,
    Journey,
    JourneyVersion,
    StaffTask,
    Step,
)
from journeys.selectors import wait_matches
from journeys.services import staff_task_close, trigger_event_names
from journeys.validation import graph_parse, graph_validate

MAX_ROUNDS = 200


@dataclass(frozen=True)
class SimulatedEvent:
    """Something the customer does during the test, this long after they entered."""

    name: str
    after_seconds: int = 0
    properties: dict = field(default_factory=dict)


def _graph_of(journey: Journey, version: int | None) -> dict:
    if version is None:
        return journey.draft_graph
    found = journey.versions.filter(number=version).values_list("graph", flat=True).first()
    if found is None:
        raise ValidationError(
            {"version": [_("This journey has no version %(number)s.") % {"number": version}]}
        )
    return found


def _trigger_of(graph: dict, trigger: str) -> str:
    nodes, _edges, _problems = graph_parse(graph)
    triggers = [node_id for node_id, (kind, _config) in nodes.items() if kind.kind == "trigger"]
    if trigger:
        if trigger not in triggers:
            raise ValidationError(
                {"trigger": [_("“%(node)s” is not a trigger of the journey.") % {"node": trigger}]}
            )
        return trigger
    if not triggers:
        raise ValidationError({"trigger": [_("The journey has no trigger to start from.")]})
    return triggers[0]


def journey_test_run(
    *,
    journey: Journey,
    customer: Customer,
    version: int | None = None,
    trigger: str = "",
    context: dict | None = None,
    events: list[SimulatedEvent] = (),
    outcomes: dict[str, str] | None = None,
) -> dict:
    """Runs the journey for the customer and returns the path it took, step by step with each
    decision's reason, the messages it sent (to the sandbox) and the tasks it created; then undoes
    everything. ``outcomes``: per node, the handle a webhook leaves by or the outcome a task is closed
    with (no outcome: the task times out)."""
    graph = _graph_of(journey, version)
    node_id = _trigger_of(graph, trigger)
    outcomes = dict(outcomes or {})
    started = timezone.now()
    with transaction.atomic():
        try:
            return _run(
                journey,
                customer,
                graph,
                version,
                node_id,
                dict(context or {}),
                list(events),
                outcomes,
                started,
            )
        finally:
            transaction.set_rollback(True)


def _run(journey, customer, graph, version, node_id, context, events, outcomes, started) -> dict:
    if version is None:
        # The draft as a version of its own, numbered 0 (published versions start at 1).
        run_version = JourneyVersion.objects.create(
            journey=journey,
            number=0,
            graph=graph,
            trigger_events=trigger_event_names(graph),
            published_at=started,
        )
    else:
        run_version = journey.versions.get(number=version)
    # The engine runs active journeys only; the change is undone with the rest.
    Journey.objects.filter(pk=journey.pk).update(status=Journey.Status.ACTIVE)
    enrollment = Enrollment.objects.create(
        journey=journey,
        version=run_version,
        customer=customer,
        entry_key=f"{TEST_ENTRY_PREFIX}{uuid.uuid4().hex}",
        node_id=node_id,
        visits={node_id: 1},
        wake_at=started,
        enrolled_at=started,
        context={**context, TEST_OUTCOMES_KEY: outcomes},
    )
    # Events from before the test run never wake it.
    after_id = (
        Event.objects.filter(customer=customer).order_by("-id").values_list("id", flat=True).first() or 0
    )
    pending = sorted(events, key=lambda event: event.after_seconds)
    clock, consumed, waiting_for = started, set(), []
    try:
        for _round in range(MAX_ROUNDS):
            engine.batch_run(limit=1, ids=[enrollment.pk], now=clock)
            enrollment.refresh_from_db()
            for message in Message.objects.filter(enrollment_id=enrollment.pk, status=Message.Status.QUEUED):
                message_simulate(message=message)
            if enrollment.status != Enrollment.Status.ACTIVE:
                break
            if enrollment.phase == Enrollment.Phase.ENTER:
                continue  # more steps than one run takes: go on at once
            _tasks_close(enrollment, outcomes)
            woken = _event_for(enrollment, consumed, after_id)
            if woken is None and pending and enrollment.waiting_events:
                due = next((event for event in pending if event.name in enrollment.waiting_events), None)
                at = started + dt.timedelta(seconds=due.after_seconds) if due else None
                if due is not None and (enrollment.wake_at is None or at <= enrollment.wake_at):
                    pending.remove(due)
                    clock = max(clock, at)
                    system_events_record(
                        rows=[(customer.pk, due.name)],
                        kind="track",
                        properties=due.properties,
                        moment=clock,
                        message_prefix=f"test-{uuid.uuid4().hex}",
                    )
                    woken = _event_for(enrollment, consumed, after_id)
            if woken is not None:
                consumed.add(woken["id"])
                Enrollment.objects.filter(pk=enrollment.pk).update(
                    wake_at=clock, waiting_events=[], woken_by=woken
                )
            elif enrollment.wake_at is not None:
                clock = max(clock, enrollment.wake_at)  # the delay or the wait's timeout passes at once
            else:
                waiting_for = list(enrollment.waiting_events)
                break
        return _report(enrollment, graph, clock, started, waiting_for)
    finally:
        if version is None:
            engine._compiled.pop(run_version.pk, None)  # the draft's test version never runs again


def _event_for(enrollment: Enrollment, consumed: set[int], after_id: int) -> dict | None:
    """An event written during the test (a receipt, a closed task, a given event: newer than
    ``after_id``) that the enrollment's wait is for."""
    if not enrollment.waiting_events:
        return None
    match = enrollment.waiting_match or {}
    for event_id, name, properties in (
        Event.objects.filter(
            customer_id=enrollment.customer_id, name__in=enrollment.waiting_events, id__gt=after_id
        )
        .exclude(pk__in=consumed)
        .order_by("id")
        .values_list("id", "name", "properties")
    ):
        if wait_matches(properties, match.get("property", ""), match.get("value")):
            return {"id": event_id, "name": name, "properties": properties}
    return None


def _tasks_close(enrollment: Enrollment, outcomes: dict[str, str]) -> None:
    for task in StaffTask.objects.filter(
        key__startswith=f"journey:{enrollment.pk}:", status=StaffTask.Status.OPEN
    ):
        outcome = outcomes.get(task.node_id)
        if outcome in {StaffTask.Status.DONE, StaffTask.Status.NOT_REACHED}:
            staff_task_close(task=task, outcome=outcome, actor=task.assignee, note=_("test mode"))


def _labels(graph: dict) -> dict[str, str]:
    return {
        node.get("id"): (node.get("config") or {}).get("label") or ""
        for node in graph.get("nodes", [])
        if isinstance(node, dict)
    }


def _report(enrollment: Enrollment, graph: dict, clock, started, waiting_for: list[str]) -> dict:
    labels = _labels(graph)
    steps = [
        {
            "node": step.node_id,
            "type": step.node_type,
            "label": labels.get(step.node_id, ""),
            "entered_at": step.entered_at,
            "left_at": step.left_at,
            "outcome": step.outcome,
            "reason": step.reason,
        }
        for step in Step.objects.filter(enrollment=enrollment).order_by("id")
    ]
    messages = [
        {
            "node": message.node_id,
            "channel": message.channel,
            "template": message.template.key if message.template else "",
            "recipient": message.recipient,
            "status": message.status,
            "reason": message.reason,
        }
        for message in Message.objects.filter(enrollment_id=enrollment.pk)
        .select_related("template")
        .order_by("id")
    ]
    tasks = [
        {
            "node": task.node_id,
            "title": task.title,
            "assignee": task.assignee.get_username() if task.assignee else None,
            "due_at": task.due_at,
            "status": task.status,
        }
        for task in StaffTask.objects.filter(key__startswith=f"journey:{enrollment.pk}:").select_related(
            "assignee"
        )
    ]
    return {
        "status": enrollment.status,
        "reason": enrollment.reason,
        "waiting_for": waiting_for,
        "started_at": started,
        "simulated_until": clock,
        "problems": graph_validate(graph),
        "steps": steps,
        "messages": messages,
        "tasks": tasks,
    }


def test_report_shown(report: dict, *, show_pii: bool) -> dict:
    """A test run's report as this reader may see it: recipients, reasons and titles (which may quote
    a rendered content or the customer's traits) masked without ``view_pii``."""
    return redact_fields([dict(report)], "reason", "steps", "messages", "tasks", show_pii=show_pii)[0]
