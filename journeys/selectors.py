"""Reads of journeys: enrollments, per-node counts, and the events waits look for."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import Count, Exists, Min, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from cdp.models import Event
from cdp.selectors import customers_visible_to
from journeys.models import Enrollment, Journey, JourneyVersion, Step
from segments.evaluator import properties_match
from segments.rules import MISSING


def event_arrived(
    *,
    customer_id: int,
    name: str,
    since: dt.datetime,
    match_property: str,
    match_value,
    where: list,
    today: dt.date,
) -> int | None:
    """The id of the first event named ``name`` the customer got since ``since`` that matches."""
    events = Event.objects.filter(
        customer_id=customer_id, name=name, timestamp__gte=since - dt.timedelta(days=1)
    )
    for event_id, properties in (
        events.filter(received_at__gte=since).order_by("id").values_list("id", "properties")
    ):
        if wait_matches(properties, match_property, match_value) and properties_match(
            properties, where, today
        ):
            return event_id
    return None


def events_arrived_since(*, customer_ids: list[int], name: str, since: dt.datetime) -> list[tuple]:
    """``(id, customer id, received at, properties)`` of the events named ``name`` these customers got
    since ``since``, oldest first: what a batch of waits ending together may have missed."""
    return list(
        Event.objects.filter(
            customer_id__in=customer_ids,
            name=name,
            timestamp__gte=since - dt.timedelta(days=1),
            received_at__gte=since,
        )
        .order_by("id")
        .values_list("id", "customer_id", "received_at", "properties")
    )


def wait_matches(properties, match_property: str, match_value) -> bool:
    """Whether an event's properties carry the key a wait is matched on (any event when it has none)."""
    if not match_property:
        return True
    actual = properties.get(match_property, MISSING) if isinstance(properties, dict) else MISSING
    return actual is not MISSING and actual == match_value


def journey_enrollments(*, journey: Journey, status: str = "", node_id: str = "") -> QuerySet:
    enrollments = journey.enrollments.select_related("version").order_by("-id")
    if status:
        enrollments = enrollments.filter(status=status)
    if node_id:
        enrollments = enrollments.filter(node_id=node_id, status=Enrollment.Status.ACTIVE)
    return enrollments


def node_counts(*, journey: Journey) -> dict[str, dict]:
    """Per node: how many entered it, how many are there now, and how many left by each handle."""
    counts: dict[str, dict] = {}

    def node(node_id: str) -> dict:
        return counts.setdefault(node_id, {"entered": 0, "waiting": 0, "left": {}})

    for row in (
        Step.objects.filter(journey=journey).values("node_id", "outcome").annotate(n=Count("id")).order_by()
    ):
        entry = node(row["node_id"])
        entry["entered"] += row["n"]
        if row["outcome"]:
            entry["left"][row["outcome"]] = entry["left"].get(row["outcome"], 0) + row["n"]
    for row in (
        journey.enrollments.filter(status=Enrollment.Status.ACTIVE)
        .values("node_id")
        .annotate(n=Count("id"))
        .order_by()
    ):
        node(row["node_id"])["waiting"] = row["n"]
    return counts


def journey_summary(*, journey: Journey) -> dict:
    totals = journey.enrollments.aggregate(
        entered=Count("id"),
        active=Count("id", filter=Q(status=Enrollment.Status.ACTIVE)),
        converted=Count("id", filter=Q(goal_reached_at__isnull=False)),
        failed=Count("id", filter=Q(status=Enrollment.Status.FAILED)),
    )
    return totals


def journeys_reading(node: str) -> list[str]:
    """Readable names of the journeys whose draft, latest version or a version customers are still in
    reads ``node`` (``tag:<key>``, ``segment:<key>``, ``stage:<key>``): what deleting it would break."""
    from journeys.validation import graph_references

    active = Enrollment.objects.filter(version=OuterRef("pk"), status=Enrollment.Status.ACTIVE)
    in_flight = JourneyVersion.objects.filter(Exists(active))
    users = []
    for journey in Journey.objects.order_by("name", "pk"):
        graphs = list(in_flight.filter(journey=journey).values_list("graph", flat=True))
        if journey.status != Journey.Status.ARCHIVED:
            graphs.append(journey.draft_graph)
            latest = journey.versions.order_by("-number").values_list("graph", flat=True).first()
            graphs += [latest] if latest else []
        if any(node in graph_references(graph) for graph in graphs):
            users.append(_("journey “%(name)s”") % {"name": journey.name})
    return users


def journeys_overview() -> QuerySet:
    """Every journey with its live version's number and how many entered, are in it and converted
    (one query: the list page)."""
    latest = JourneyVersion.objects.filter(journey=OuterRef("pk")).order_by("-number").values("number")[:1]
    return Journey.objects.annotate(
        live_number=Subquery(latest),
        entered=Count("enrollments"),
        active=Count("enrollments", filter=Q(enrollments__status=Enrollment.Status.ACTIVE)),
        converted=Count("enrollments", filter=Q(enrollments__goal_reached_at__isnull=False)),
    ).order_by("status", "-priority", "name", "pk")


def version_conversion(*, journey: Journey) -> list[dict]:
    """Per published version, newest first: who entered it and how many reached a goal."""
    rows = (
        journey.versions.annotate(
            entered=Count("enrollments"),
            active=Count("enrollments", filter=Q(enrollments__status=Enrollment.Status.ACTIVE)),
            converted=Count("enrollments", filter=Q(enrollments__goal_reached_at__isnull=False)),
        )
        .select_related("published_by")
        .order_by("-number")
    )
    return [
        {
            "number": version.number,
            "published_at": version.published_at,
            "published_by": version.published_by.get_username() if version.published_by else "",
            "entered": version.entered,
            "active": version.active,
            "converted": version.converted,
            "rate": version.converted / version.entered if version.entered else None,
        }
        for version in rows
    ]


def customers_at_node(*, journey: Journey, node_id: str, visible: Q) -> QuerySet:
    """The customers in the journey now at ``node_id`` that the reader sees (``visible``: a filter
    through ``customer``), longest there first, with when they came and until when they wait (null:
    until an event)."""
    arrived = Step.objects.filter(
        enrollment=OuterRef("pk"), node_id=OuterRef("node_id"), visit=OuterRef("visit")
    ).values("entered_at")[:1]
    return (
        journey.enrollments.filter(visible, node_id=node_id, status=Enrollment.Status.ACTIVE)
        .select_related("customer", "version")
        .annotate(arrived_at=Subquery(arrived))
        .order_by("arrived_at", "pk")
    )


def call_duration(*, customer_id: int, message_id: int) -> int:
    """How long an answered call lasted, in seconds, as its call result reported (0: not reported)."""
    properties = (
        Event.objects.filter(
            customer_id=customer_id, name="message_delivered", properties__message=message_id
        )
        .values_list("properties", flat=True)
        .first()
    )
    try:
        return int((properties or {}).get("duration") or 0)
    except (TypeError, ValueError):
        return 0


def staff_tasks_for(*, user, status: str = "open") -> QuerySet:
    """The user's tasks with that status, and the open tasks nobody owns (anyone may take them),
    soonest due first: only about customers the user's roles let them see."""
    from journeys.models import StaffTask

    tasks = StaffTask.objects.filter(
        customers_visible_to(user, via="customer"), status=status
    ).select_related("customer", "assignee", "closed_by")
    if status == StaffTask.Status.OPEN:
        return tasks.filter(Q(assignee=user) | Q(assignee__isnull=True)).order_by("due_at", "pk")
    return tasks.filter(Q(assignee=user) | Q(closed_by=user)).order_by("-closed_at", "-pk")


def customer_staff_tasks(*, customer, limit: int = 10) -> list:
    """The customer's tasks for the profile: open ones first (soonest due), then the latest closed."""
    from journeys.models import StaffTask

    tasks = StaffTask.objects.filter(customer=customer).select_related("assignee")
    open_tasks = list(tasks.filter(status=StaffTask.Status.OPEN).order_by("due_at", "pk")[:limit])
    closed = list(
        tasks.exclude(status=StaffTask.Status.OPEN).order_by("-closed_at", "-pk")[: limit - len(open_tasks)]
    )
    return open_tasks + closed


ENGINE_QUEUE = "engine"


def _engine_words(*, count: int, since: dt.datetime, now: dt.datetime) -> tuple[str, bool]:
    """Why customers past their wake-up time have not moved on; and whether to point to /healthz."""
    from cdp.queues import backlog
    from connectors.waiting import count_words, duration_words, moment_words

    late = ngettext(
        "%(count)s customer should have moved on at %(since)s, %(age)s ago.",
        "%(count)s customers should have moved on since %(since)s, %(age)s ago.",
        count,
    ) % {
        "count": count_words(count),
        "since": moment_words(since, now),
        "age": duration_words((now - since).total_seconds()),
    }
    try:
        queues = backlog([ENGINE_QUEUE])
    except Exception:  # a broker that does not answer: the backlog is unknown, the flag stays
        queues = None
    queue = queues[0] if queues else None
    if queue is not None and queue.oldest_seconds is not None and queue.oldest_seconds > 5:
        words = {"count": count_words(queue.waiting), "age": duration_words(queue.oldest_seconds)}
        if queue.oldest_seconds > settings.QUEUE_STALE_AFTER_SECONDS:
            why = ngettext(
                "No engine worker seems to be taking tasks: %(count)s waits in the engine queue, for "
                "%(age)s. An admin can see what is wrong at /healthz.",
                "No engine worker seems to be taking tasks: %(count)s wait in the engine queue, the oldest "
                "for %(age)s. An admin can see what is wrong at /healthz.",
                queue.waiting,
            )
            return f"{late} {why % words}", True
        why = ngettext(
            "The journey engine is behind: %(count)s task waits in the engine queue, for %(age)s.",
            "The journey engine is behind: %(count)s tasks wait in the engine queue, the oldest for %(age)s.",
            queue.waiting,
        )
        return f"{late} {why % words}", False
    why = _("The journey engine has not moved them on. An admin can see what is wrong at /healthz.")
    return f"{late} {why}", True


def steps_late(*, journey: Journey, now: dt.datetime | None = None) -> dict[str, dict]:
    """Per step, the customers who wait there longer than expected (past ``QUEUE_STALE_AFTER_SECONDS``):
    those the engine should have moved on (their ``wake_at`` passed; one aggregate query on the
    ``enrollment_at_node`` index), and those whose message is still not sent (per account, with why
    it waits, from ``connectors.waiting``)."""
    from connectors.waiting import count_words, duration_words, journey_sends_late, moment_words

    now = now or timezone.now()
    late_before = now - dt.timedelta(seconds=settings.QUEUE_STALE_AFTER_SECONDS)
    steps: dict[str, dict] = {}

    def step(node_id: str) -> dict:
        return steps.setdefault(node_id, {"count": 0, "since": None, "reasons": []})

    def add(entry: dict, count: int, since: dt.datetime, text: str, code: str, health_link: bool) -> None:
        entry["count"] += count
        entry["since"] = since if entry["since"] is None else min(entry["since"], since)
        entry["reasons"].append({"code": code, "text": text, "health_link": health_link})

    if journey.status == Journey.Status.ACTIVE:  # a paused journey moves nobody on: that is expected
        for row in (
            journey.enrollments.filter(status=Enrollment.Status.ACTIVE, wake_at__lt=late_before)
            .values("node_id")
            .annotate(count=Count("id"), since=Min("wake_at"))
            .order_by()
        ):
            text, health_link = _engine_words(count=row["count"], since=row["since"], now=now)
            add(step(row["node_id"]), row["count"], row["since"], text, "engine_behind", health_link)
    for late in journey_sends_late(journey_id=journey.pk, now=now):
        sends = ngettext(
            "%(count)s message sent here has waited since %(since)s (%(age)s).",
            "%(count)s messages sent here have waited since %(since)s (%(age)s).",
            late.count,
        ) % {
            "count": count_words(late.count),
            "since": moment_words(late.since, now),
            "age": duration_words((now - late.since).total_seconds()),
        }
        add(
            step(late.node_id),
            late.count,
            late.since,
            f"{sends} {late.wait.text}",
            late.wait.code,
            late.wait.health_link,
        )
    return steps
