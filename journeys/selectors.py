"""Reads of journeys: enrollments, per-node counts, and the events waits look for."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, Q, QuerySet

from cdp.models import Event
from journeys.models import Enrollment, Journey, Step
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
