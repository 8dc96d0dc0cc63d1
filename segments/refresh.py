"""Keeping what rules maintain right as customers change: dynamic segments, dynamic tags and the
lifecycle stage (scores are awarded first, from events alone: ``segments.scoring``).

Only the customers that changed are evaluated again, every target in dependency order, in one
transaction: a segment built on a dynamic tag reads the tag as it was just refreshed. Targets that
build on no other target are evaluated together, in one pass over those customers. A definition
change recomputes that target over everyone, as a diff, then everything that builds on it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from cdp.sqlvalues import id_array
from segments.compiler import rule_compile
from segments.graph import (
    STAGE,
    definitions_load,
    dependency_order,
    dependents,
    graph_load,
    segment_node,
    tag_node,
)
from segments.models import LifecycleStage, Segment, Tag
from segments.rules import DaysAgo, EventRule, TraitRule, rule_leaves, rule_parse, rule_references
from segments.services import MembershipDiff, membership_apply, segment_refresh
from segments.stages import stages_apply, stages_refresh
from segments.tags import dynamic_tag_apply, dynamic_tag_refresh


@dataclass
class _Target:
    node: str
    rules: list  # parsed; one evaluated column each

    @property
    def references(self) -> set[str]:
        return set().union(*(rule_references(rule) for rule in self.rules))


@dataclass
class _SegmentTarget(_Target):
    segment: Segment

    def current(self, ids: str) -> set[int]:
        return _ids(
            "SELECT customer_id FROM segments_segmentmember"
            " WHERE segment_id = %s AND customer_id = ANY(%s::bigint[])",
            [self.segment.pk, ids],
        )

    def apply(self, matched: list[set[int]], current: set[int]) -> MembershipDiff:
        return membership_apply(self.segment, matched[0], current)


@dataclass
class _TagTarget(_Target):
    tag: Tag

    def current(self, ids: str) -> set[int]:
        return _ids(
            "SELECT customer_id FROM segments_customertag"
            " WHERE tag_id = %s AND customer_id = ANY(%s::bigint[])",
            [self.tag.pk, ids],
        )

    def apply(self, matched: list[set[int]], current: set[int]) -> MembershipDiff:
        return dynamic_tag_apply(self.tag, matched[0], current)


@dataclass
class _StagesTarget(_Target):
    stages: list[LifecycleStage]

    def current(self, ids: str) -> dict[int, int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT customer_id, stage_id FROM segments_customerstage"
                " WHERE customer_id = ANY(%s::bigint[])",
                [ids],
            )
            return dict(cursor.fetchall())

    def apply(self, matched: list[set[int]], current: dict[int, int], considered: set[int]) -> MembershipDiff:
        return stages_apply(self.stages, _furthest(self.stages, matched, considered), current)


def _ids(sql: str, params: list) -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


def _furthest(
    stages: list[LifecycleStage], matched: list[set[int]], considered: set[int]
) -> dict[int, int | None]:
    """Each customer's stage: the furthest (last in order) whose rule they match, else none."""
    chosen: dict[int, int | None] = dict.fromkeys(considered)
    for stage, members in zip(stages, matched, strict=True):  # in order: later stages overwrite
        for customer_id in members:
            chosen[customer_id] = stage.pk
    return chosen


def _targets_load() -> dict[str, _Target]:
    """Every rule-maintained target, locked for this transaction (one refresh at a time per target)."""
    targets: dict[str, _Target] = {}
    for segment in Segment.objects.select_for_update().filter(kind=Segment.Kind.DYNAMIC).exclude(rule=None):
        targets[segment_node(segment.key)] = _SegmentTarget(
            segment_node(segment.key), [rule_parse(segment.rule)], segment
        )
    for tag in Tag.objects.select_for_update().filter(kind=Tag.Kind.DYNAMIC).exclude(rule=None):
        targets[tag_node(tag.key)] = _TagTarget(tag_node(tag.key), [rule_parse(tag.rule)], tag)
    stages = list(LifecycleStage.objects.select_for_update().order_by("position", "pk"))
    if stages:
        targets[STAGE] = _StagesTarget(STAGE, [rule_parse(stage.rule) for stage in stages], stages)
    return targets


@transaction.atomic
def customers_refresh(*, customer_ids: list[int], today: dt.date | None = None) -> dict[str, MembershipDiff]:
    """Re-evaluates every rule-maintained target for these customers only, in one transaction;
    returns who entered and who left each (targets with no change are left out)."""
    if not customer_ids:
        return {}
    ids = id_array(set(customer_ids))
    today = today or timezone.localdate()
    targets = _targets_load()
    graph = {node: target.references for node, target in targets.items()}
    independent = [target for target in targets.values() if not target.references & targets.keys()]
    matched, considered = _matched_together(independent, ids, today)
    changes = {}
    for node in dependency_order(targets, graph):
        target = targets[node]
        if node not in matched:
            columns, _considered = _matched_together([target], ids, today)
            matched[node] = columns[node]
        current = target.current(ids)
        if isinstance(target, _StagesTarget):
            diff = target.apply(matched[node], current, considered)
        else:
            diff = target.apply(matched[node], current)
        if diff.entered or diff.exited:
            changes[node] = diff
    return changes


def _matched_together(
    targets: list[_Target], ids: str, today: dt.date
) -> tuple[dict[str, list[set[int]]], set[int]]:
    """Several targets' rules in one pass over the customers: one row per customer, a column per
    rule. Also returns the active customers among ``ids``."""
    compiled = [rule_compile(rule, today=today, few=True) for target in targets for rule in target.rules]
    columns = "".join(f", ({rule.where})" for rule in compiled)
    params = [param for rule in compiled for param in rule.params]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.id{columns} FROM cdp_customer AS c"  # noqa: S608 (compiled rules; values are parameters)
            " WHERE c.id = ANY(%s::bigint[]) AND c.merged_into_id IS NULL",
            [*params, ids],
        )
        rows = cursor.fetchall()
    matched, column = {}, 1
    for target in targets:
        matched[target.node] = [{row[0] for row in rows if row[column + i]} for i in range(len(target.rules))]
        column += len(target.rules)
    return matched, {row[0] for row in rows}


# --------------------------------------------------------------------------------------------------
# After a definition changes.


def node_refresh(node: str, *, today: dt.date | None = None) -> MembershipDiff:
    """One target recomputed over every customer, as a diff."""
    kind, _sep, key = node.partition(":")
    if kind == "segment":
        return segment_refresh(segment=Segment.objects.get(key=key), today=today)
    if kind == "tag":
        return dynamic_tag_refresh(tag=Tag.objects.select_for_update().get(key=key), today=today)
    if node == STAGE:
        return stages_refresh(today=today)
    raise ValueError(f"not a rule-maintained target: {node}")


@transaction.atomic
def dependents_refresh(node: str, *, today: dt.date | None = None) -> list[str]:
    """Everything that builds on ``node``, recomputed in dependency order (after ``node`` itself
    changed); returns the nodes refreshed."""
    refreshed = dependents(node, graph_load())
    for dependent in refreshed:
        node_refresh(dependent, today=today)
    return refreshed


# --------------------------------------------------------------------------------------------------
# The clock: customers who cross a time-window edge with no new event ("no order in 30 days" turns
# true on the 30th day) are found through the per-day rollups' (name, day) index.


def _window_edges(rule) -> tuple[list[tuple[str, int]], bool]:
    """(event name, days) pairs whose windows move with the date, and whether the rule also has
    trait dates relative to today (those have no index to find the customers by)."""
    edges, trait_dates = [], False
    for leaf in rule_leaves(rule):
        if isinstance(leaf, EventRule):
            if leaf.within_days:
                edges.append((leaf.event, leaf.within_days))
            for test in (leaf.first_time, leaf.last_time):
                if test is None:
                    continue
                if test.op == "within_last_days":
                    edges.append((leaf.event, test.value))
                elif isinstance(test.value, DaysAgo):
                    edges.append((leaf.event, test.value.days_ago + 1))
        elif isinstance(leaf, TraitRule):
            test = leaf.comparison()
            trait_dates |= test.op == "within_last_days" or isinstance(test.value, DaysAgo)
    return edges, trait_dates


def edge_customers(*, name: str, days: int, since: dt.date, today: dt.date) -> set[int]:
    """Customers whose "within the last ``days`` days" of ``name`` let go of a day between the day
    after ``since`` and ``today``: those who did it on the days that left the window (one day's
    margin either side, for moments tested by their own day)."""
    first = since - dt.timedelta(days=days + 1)
    last = today - dt.timedelta(days=days - 1)
    return _ids(
        "SELECT DISTINCT customer_id FROM cdp_customereventdaily WHERE name = %s AND day BETWEEN %s AND %s",
        [name, first, last],
    )


EDGE_CHUNK = 10_000


def edges_cross(*, today: dt.date | None = None) -> int:
    """Once a day (beat's tick calls this every minute; it acts when the date has changed): every
    target whose rules have moving windows is re-evaluated for the customers at the windows' edges;
    targets with trait dates relative to today are recomputed whole. Returns the customers looked at."""
    from segments.scoring import rule_clock

    today = today or timezone.localdate()
    with transaction.atomic():
        clock = rule_clock()
        since = clock.edges_day
        if since >= today:
            return 0
        clock.edges_day = today
        clock.save(update_fields=["edges_day"])
    graph = graph_load()
    customers: set[int] = set()
    whole: list[str] = []
    for node, rules in definitions_load().items():
        for rule in rules:
            edges, trait_dates = _window_edges(rule)
            for name, days in edges:
                customers |= edge_customers(name=name, days=days, since=since, today=today)
            if trait_dates and node not in whole:
                whole.append(node)
    ordered = sorted(customers)
    for start in range(0, len(ordered), EDGE_CHUNK):
        customers_refresh(customer_ids=ordered[start : start + EDGE_CHUNK], today=today)
    for node in dependency_order(whole, graph):
        with transaction.atomic():
            node_refresh(node, today=today)
            dependents_refresh(node, today=today)
    return len(customers)
