"""Writes of journeys: drafts, publishing (validated, immutable versions), pause / resume / archive,
and enrolling customers under the journey's entry policy."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from cdp.ingest import system_events_record
from cdp.services import audit_record
from cdp.sqlvalues import json_rows
from journeys.models import Enrollment, Journey, JourneyVersion, StaffTask
from journeys.validation import GraphInvalid, graph_parse, graph_validate

EMPTY_GRAPH = {"nodes": [], "edges": []}


class DraftConflict(Exception):
    """The draft was saved by someone else since the revision the save started from."""

    def __init__(self, journey: Journey):
        super().__init__(f"journey {journey.pk} is at draft revision {journey.draft_revision}")
        self.journey = journey


def _policy_checked(*, entry_policy: str, cooldown_seconds: int | None, entry_key_property: str) -> None:
    problems = {}
    if entry_policy not in Journey.EntryPolicy.values:
        problems["entry_policy"] = [_("Choose once, after_cooldown or once_per_key.")]
    if entry_policy == Journey.EntryPolicy.AFTER_COOLDOWN and not cooldown_seconds:
        problems["cooldown_seconds"] = [
            _("Give the cooldown, in seconds, before a customer may enter again.")
        ]
    if entry_policy == Journey.EntryPolicy.ONCE_PER_KEY and not entry_key_property.strip():
        problems["entry_key_property"] = [_("Name the trigger event's property that holds the key.")]
    if problems:
        raise ValidationError(problems)


@transaction.atomic
def journey_save(
    *,
    name: str,
    actor,
    journey: Journey | None = None,
    description: str = "",
    draft_graph: dict | None = None,
    entry_policy: str = Journey.EntryPolicy.ONCE,
    cooldown_seconds: int | None = None,
    entry_key_property: str = "",
    priority: int = 0,
    draft_revision: int | None = None,
) -> Journey:
    """Creates a journey or changes its draft and settings. The draft may be incomplete: it is only
    validated when published. Published versions never change.

    With ``draft_revision`` (the revision the editor loaded), the save is refused with DraftConflict
    when someone else saved the journey since; every save counts the revision up."""
    if not name.strip():
        raise ValidationError({"name": [_("Give the journey a name.")]})
    _policy_checked(
        entry_policy=entry_policy, cooldown_seconds=cooldown_seconds, entry_key_property=entry_key_property
    )
    if journey is not None:
        journey = Journey.objects.select_for_update().get(pk=journey.pk)
        if journey.status == Journey.Status.ARCHIVED:
            raise ValidationError({"status": [_("An archived journey cannot be changed.")]})
        if draft_revision is not None and draft_revision != journey.draft_revision:
            raise DraftConflict(journey)
        journey.draft_revision += 1
    journey = journey or Journey(created_by=actor if getattr(actor, "is_authenticated", False) else None)
    journey.name, journey.description = name.strip(), description
    journey.draft_graph = draft_graph if draft_graph is not None else (journey.draft_graph or EMPTY_GRAPH)
    journey.entry_policy, journey.cooldown_seconds = entry_policy, cooldown_seconds
    journey.entry_key_property, journey.priority = entry_key_property.strip(), priority
    journey.save()
    audit_record(actor=actor, action="journey.save", target=journey)
    return journey


def trigger_event_names(graph: dict) -> list[str]:
    parsed, _edges, _problems = graph_parse(graph)
    names = {kind.trigger_event(config) for kind, config in parsed.values() if kind.kind == "trigger"}
    return sorted(name for name in names if name)


@transaction.atomic
def journey_publish(*, journey: Journey, actor, note: str = "") -> JourneyVersion:
    """Validates the draft and publishes it as a new immutable version that new customers enter;
    customers already in the journey stay on their version. Raises GraphInvalid with every problem."""
    journey = Journey.objects.select_for_update().get(pk=journey.pk)
    if journey.status == Journey.Status.ARCHIVED:
        raise ValidationError({"status": [_("An archived journey cannot be published.")]})
    problems = graph_validate(journey.draft_graph)
    if problems:
        raise GraphInvalid(problems)
    latest = journey.versions.order_by("-number").values_list("number", flat=True).first() or 0
    version = JourneyVersion.objects.create(
        journey=journey,
        number=latest + 1,
        graph=journey.draft_graph,
        trigger_events=trigger_event_names(journey.draft_graph),
        published_at=timezone.now(),
        note=note.strip(),
        published_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    if journey.status == Journey.Status.DRAFT:
        journey.status = Journey.Status.ACTIVE
    journey.save(update_fields=["status", "updated_at"])
    audit_record(actor=actor, action="journey.publish", target=journey, details={"version": version.number})
    return version


@transaction.atomic
def journey_set_status(*, journey: Journey, status: str, actor) -> Journey:
    """Pause (nobody enters, nobody moves on), resume, or archive (everyone still in it exits)."""
    journey = Journey.objects.select_for_update().get(pk=journey.pk)
    allowed = {
        Journey.Status.PAUSED: {Journey.Status.ACTIVE},
        Journey.Status.ACTIVE: {Journey.Status.PAUSED},
        Journey.Status.ARCHIVED: {Journey.Status.DRAFT, Journey.Status.ACTIVE, Journey.Status.PAUSED},
    }
    if journey.status not in allowed.get(status, set()):
        raise ValidationError(
            {
                "status": [
                    _("A journey that is “%(current)s” cannot become “%(new)s”.")
                    % {"current": Journey.Status(journey.status).label, "new": Journey.Status(status).label}
                ]
            }
        )
    journey.status = status
    journey.save(update_fields=["status", "updated_at"])
    if status == Journey.Status.ARCHIVED:
        journey.enrollments.filter(status=Enrollment.Status.ACTIVE).update(
            status=Enrollment.Status.EXITED,
            reason="journey archived",
            wake_at=None,
            waiting_events=[],
            finished_at=timezone.now(),
        )
    audit_record(actor=actor, action=f"journey.{status}", target=journey)
    return journey


# -- enrolling -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """A customer who matched a trigger node with an event."""

    version_id: int
    journey_id: int
    node_id: str
    customer_id: int
    event_id: int | None
    occurred_at: dt.datetime
    properties: dict


def _entry_key(journey: Journey, entry: Entry) -> str | None:
    if journey.entry_policy == Journey.EntryPolicy.ONCE_PER_KEY:
        value = (
            entry.properties.get(journey.entry_key_property) if isinstance(entry.properties, dict) else None
        )
        return None if value is None or value == "" else f"key:{value}"
    if journey.entry_policy == Journey.EntryPolicy.AFTER_COOLDOWN:
        return f"event:{entry.event_id}" if entry.event_id else f"at:{entry.occurred_at.isoformat()}"
    return "once"


def _cooling_down(journey: Journey, customer_ids: set[int], now: dt.datetime) -> tuple[set[int], dict]:
    """Customers still in the journey or who entered it within the cooldown; and when each customer
    last entered (an event from before that never enrolls them again)."""
    since = now - dt.timedelta(seconds=journey.cooldown_seconds or 0)
    blocked, last_entered = set(), {}
    for customer_id, status, enrolled_at in Enrollment.objects.filter(
        journey=journey, customer_id__in=customer_ids
    ).values_list("customer_id", "status", "enrolled_at"):
        if status == Enrollment.Status.ACTIVE or enrolled_at >= since:
            blocked.add(customer_id)
        last_entered[customer_id] = max(enrolled_at, last_entered.get(customer_id, enrolled_at))
    return blocked, last_entered


@transaction.atomic
def enrollments_start(*, entries: list[Entry], now: dt.datetime | None = None) -> list[int]:
    """Enrolls the customers at their trigger nodes (due at once), under each journey's entry policy;
    an entry seen before enrolls nobody. Returns the new enrollments' ids."""
    now = now or timezone.now()
    journeys = {
        journey.pk: journey
        for journey in Journey.objects.filter(
            pk__in={entry.journey_id for entry in entries}, status=Journey.Status.ACTIVE
        ).only("id", "entry_policy", "cooldown_seconds", "entry_key_property")
    }
    rows, taken = [], set()
    for journey_id, journey in journeys.items():
        mine = [entry for entry in entries if entry.journey_id == journey_id]
        blocked: set[int] = set()
        last_entered: dict[int, dt.datetime] = {}
        if journey.entry_policy == Journey.EntryPolicy.AFTER_COOLDOWN:
            with connection.cursor() as cursor:
                # Two workers enrolling the same customers check the cooldown one after the other.
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [0x4A0E, journey_id])
            blocked, last_entered = _cooling_down(journey, {entry.customer_id for entry in mine}, now)
        for entry in mine:
            key = _entry_key(journey, entry)
            if key is None or entry.customer_id in blocked or (journey_id, entry.customer_id, key) in taken:
                continue
            if entry.customer_id in last_entered and entry.occurred_at <= last_entered[entry.customer_id]:
                continue  # an event from before the customer's last entry (it was seen then)
            if journey.entry_policy == Journey.EntryPolicy.AFTER_COOLDOWN:
                blocked.add(entry.customer_id)  # one entry per batch; the next waits out the cooldown
            taken.add((journey_id, entry.customer_id, key))
            rows.append(
                (
                    journey_id,
                    entry.version_id,
                    entry.customer_id,
                    key,
                    entry.node_id,
                    {entry.node_id: 1},
                    entry.properties,
                )
            )
    if not rows:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO journeys_enrollment (journey_id, version_id, customer_id, entry_key, node_id, visit,
                visits, phase, status, wake_at, waiting_events, waiting_match, context, reason, enrolled_at)
            SELECT journey_id, version_id, customer_id, entry_key, node_id, 1, visits, 'enter', 'active', %s,
                   '{}', '{}'::jsonb, context, '', %s
            FROM json_to_recordset(%s::json) AS r(journey_id bigint, version_id bigint, customer_id bigint,
                 entry_key text, node_id text, visits jsonb, context jsonb)
            ORDER BY customer_id
            ON CONFLICT (journey_id, customer_id, entry_key) DO NOTHING
            RETURNING id
            """,
            [now, now, json_rows("journey_id version_id customer_id entry_key node_id visits context", rows)],
        )
        return [row[0] for row in cursor.fetchall()]


# -- staff tasks -----------------------------------------------------------------------------------


@transaction.atomic
def staff_task_create(
    *,
    customer,
    title: str,
    due_at: dt.datetime,
    assignee=None,
    note: str = "",
    journey_id: int | None = None,
    node_id: str = "",
    key: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[StaffTask, bool]:
    """A task for a person about a customer (a ``task_created`` event on their timeline); the same
    ``key`` (a journey step's) returns the first task."""
    if key is not None:
        existing = StaffTask.objects.filter(key=key).first()
        if existing is not None:
            return existing, False
    now = now or timezone.now()
    task = StaffTask.objects.create(
        customer=customer,
        assignee=assignee,
        title=title[:200],
        note=note,
        due_at=due_at,
        journey_id=journey_id,
        node_id=node_id,
        key=key,
        created_at=now,
    )
    system_events_record(
        rows=[(customer.pk, "task_created")],
        kind="track",
        properties={
            "task": task.pk,
            "title": task.title,
            "due_at": due_at.isoformat(),
            "assignee": assignee.get_username() if assignee else None,
        },
        moment=now,
        message_prefix=f"task-created-{task.pk}",
    )
    return task, True


@transaction.atomic
def staff_task_close(*, task: StaffTask, outcome: str, actor, note: str = "") -> StaffTask:
    """Done, or the customer could not be reached: a ``task_closed`` event on the customer's timeline,
    which moves on the journey step waiting for it."""
    task = StaffTask.objects.select_for_update().get(pk=task.pk)
    if outcome not in {StaffTask.Status.DONE, StaffTask.Status.NOT_REACHED}:
        raise ValidationError({"outcome": [_("Choose done or not_reached.")]})
    if task.status != StaffTask.Status.OPEN:
        raise ValidationError({"outcome": [_("This task is closed already.")]})
    if task.assignee_id is not None and getattr(actor, "pk", None) != task.assignee_id:
        raise ValidationError({"outcome": [_("Only the person the task is for can close it.")]})
    now = timezone.now()
    task.status, task.outcome_note, task.closed_at = outcome, note.strip(), now
    task.closed_by = actor if getattr(actor, "is_authenticated", False) else None
    task.save(update_fields=["status", "outcome_note", "closed_at", "closed_by"])
    system_events_record(
        rows=[(task.customer_id, StaffTask.CLOSED_EVENT)],
        kind="track",
        properties={
            "task": task.pk,
            "task_key": task.key or "",
            "title": task.title,
            "outcome": outcome,
            "note": task.outcome_note,
            "by": actor.get_username() if getattr(actor, "is_authenticated", False) else None,
        },
        moment=now,
        message_prefix=f"task-closed-{task.pk}",
    )
    return task


# -- enrolling over the API ------------------------------------------------------------------------


def journey_enroll(*, journey: Journey, customer, context: dict, trigger: str = "") -> Enrollment | None:
    """Enrolls the customer at the journey's API trigger (the only one, or ``trigger``) with the
    caller's context, under the journey's entry policy, and runs them until they wait. Returns the
    enrollment, or None when the entry policy keeps them out (in it already, once ever, cooldown)."""
    from journeys.engine import enrollments_run, graph_compiled
    from journeys.nodes.inbound import ApiTrigger

    if journey.status != Journey.Status.ACTIVE:
        raise ValidationError(
            {
                "journey": [
                    _("Only an active journey takes customers; this one is “%(status)s”.")
                    % {"status": Journey.Status(journey.status).label}
                ]
            }
        )
    version = journey.live_version
    triggers = {
        node_id: config
        for node_id, (kind, config) in graph_compiled(version).nodes.items()
        if isinstance(kind, ApiTrigger)
    }
    if trigger and trigger not in triggers:
        raise ValidationError(
            {"trigger": [_("“%(node)s” is not an API trigger of this journey.") % {"node": trigger}]}
        )
    if not triggers:
        raise ValidationError(
            {"trigger": [_("This journey has no API trigger; add one to enroll customers over the API.")]}
        )
    if not trigger and len(triggers) > 1:
        raise ValidationError(
            {
                "trigger": [
                    _("This journey has several API triggers; name one (%(nodes)s).")
                    % {"nodes": ", ".join(sorted(triggers))}
                ]
            }
        )
    node_id = trigger or next(iter(triggers))
    missing = [name for name in triggers[node_id].required_context if context.get(name) in (None, "")]
    if missing:
        raise ValidationError(
            {"context": [_("Missing context fields: %(fields)s.") % {"fields": ", ".join(missing)}]}
        )
    now = timezone.now()
    ids = enrollments_start(
        entries=[
            Entry(
                version_id=version.pk,
                journey_id=journey.pk,
                node_id=node_id,
                customer_id=customer.pk,
                event_id=None,
                occurred_at=now,
                properties=context,
            )
        ],
        now=now,
    )
    if not ids:
        return None
    enrollments_run(ids=ids)
    return Enrollment.objects.select_related("version").get(pk=ids[0])
