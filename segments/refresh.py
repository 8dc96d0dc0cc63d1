"""Keeping what rules maintain right as customers change: dynamic segments, dynamic tags and the
lifecycle stage (scores are awarded first, from events alone: ``segments.scoring``).

Only the customers that changed are evaluated again, every target in dependency order, in one
transaction: a segment built on a dynamic tag reads the tag as it was just refreshed. Targets are
taken in levels (those that build on no other target, then those that build only on them, ...);
a level is evaluated in one pass over those customers and its segments' changes are written in one
go. A definition change recomputes that target over everyone, as a diff, then everything that
builds on it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from cdp.sqlvalues import id_array
from segments.compiler import evaluation_settings, rules_compile
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


@dataclass
class _TagTarget(_Target):
    tag: Tag


@dataclass
class _StagesTarget(_Target):
    stages: list[LifecycleStage]


@dataclass
class _Current:
    """Who is in each target now, among the customers looked at. Read once for the whole refresh: a
    target's rows change only when that target is applied, so reading them before the targets it
    builds on are applied gives the same answer."""

    segments: dict[int, set[int]]  # segment id: its members
    tags: dict[int, set[int]]  # tag id: its holders
    stages: dict[int, int]  # customer: stage id


def _held(kind: str, table: str, column: str) -> str:
    """Who holds what among an id array: customer by customer through the customer index (a few rows
    each). ``OFFSET 0`` keeps it that way even when the table's statistics lag behind a large change,
    where the planner would otherwise read the whole table. Fixed names only."""
    return (
        f"SELECT '{kind}', held.{column}, x.id FROM unnest(%s::bigint[]) AS x(id) CROSS JOIN LATERAL"  # noqa: S608
        f" (SELECT t.{column} FROM {table} AS t WHERE t.customer_id = x.id OFFSET 0) AS held"
    )


_HELD_SEGMENTS = _held("s", "segments_segmentmember", "segment_id")
_HELD_TAGS = _held("t", "segments_customertag", "tag_id")
_HELD_STAGES = _held("g", "segments_customerstage", "stage_id")


def _current_load(targets: list[_Target], ids: str) -> _Current:
    """Every target's members among ``ids``, in one statement."""
    segment_ids = [target.segment.pk for target in targets if isinstance(target, _SegmentTarget)]
    tag_ids = [target.tag.pk for target in targets if isinstance(target, _TagTarget)]
    current = _Current({pk: set() for pk in segment_ids}, {pk: set() for pk in tag_ids}, {})
    parts = [
        part
        for part, wanted in (
            (_HELD_SEGMENTS, segment_ids),
            (_HELD_TAGS, tag_ids),
            (_HELD_STAGES, any(isinstance(target, _StagesTarget) for target in targets)),
        )
        if wanted
    ]
    if not parts:
        return current
    held = {"s": current.segments, "t": current.tags}
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), [ids] * len(parts))
        for kind, target_id, customer_id in cursor.fetchall():
            if kind == "g":
                current.stages[customer_id] = target_id
            elif target_id in held[kind]:  # not a static segment or tag
                held[kind][target_id].add(customer_id)
    return current


def _ids(sql: str, params: list) -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


def _furthest(
    stages: list[LifecycleStage], matched: list[set[int]], asked: set[int]
) -> dict[int, int | None]:
    """Each customer's stage: the furthest (last in order) whose rule they match, else none."""
    chosen: dict[int, int | None] = dict.fromkeys(asked)
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


# A segment or tag whose rule has at most this many leaves (counting those it takes in from the
# rules it reads) is read by the rules built on it as its rule, in the same pass; a larger one from
# its stored rows, in a later pass (so that long chains do not grow the statement without bound).
INLINE_LEAVES = 100


def _levels(targets: dict[str, _Target]) -> tuple[list[list[_Target]], set[str]]:
    """The passes of a refresh, each a list of targets in dependency order, and the segments and
    tags that are read through their rule within a pass. A target that reads a segment or tag of
    the same refresh takes in its rule and goes in the same pass; one that reads the stages (or a
    rule too large to take in) goes in a later pass than them, after they are stored."""
    graph = {node: target.references & targets.keys() for node, target in targets.items()}
    depth: dict[str, int] = {}
    leaves: dict[str, int] = {}
    inline: set[str] = set()
    for node in dependency_order(targets, graph):
        target = targets[node]
        depth[node], leaves[node] = 0, sum(len(rule_leaves(rule)) for rule in target.rules)
        for reference in graph[node]:
            if reference not in depth:  # a cycle (refused when rules are saved)
                continue
            if reference in inline:
                depth[node] = max(depth[node], depth[reference])
                leaves[node] += leaves[reference]
            else:
                depth[node] = max(depth[node], depth[reference] + 1)
        if not isinstance(target, _StagesTarget) and leaves[node] <= INLINE_LEAVES:
            inline.add(node)
    levels: list[list[_Target]] = [[] for _level in range(1 + max(depth.values(), default=-1))]
    for node in depth:  # dependency order within each level
        levels[depth[node]].append(targets[node])
    return levels, inline


@transaction.atomic
def customers_refresh(*, customer_ids: list[int], today: dt.date | None = None) -> dict[str, MembershipDiff]:
    """Re-evaluates every rule-maintained target for these customers only, in one transaction;
    returns who entered and who left each (targets with no change are left out)."""
    if not customer_ids:
        return {}
    asked = set(customer_ids)
    ids = id_array(asked)
    today = today or timezone.localdate()
    evaluation_settings()
    targets = _targets_load()
    current = _current_load(list(targets.values()), ids)
    changes: dict[str, MembershipDiff] = {}
    levels, inline = _levels(targets)
    for level in levels:
        matched, _active = _matched_together(level, ids, today, inline)
        segments = [target for target in level if isinstance(target, _SegmentTarget)]
        diffs = membership_apply(
            [
                (target.segment, matched[target.node][0], current.segments[target.segment.pk])
                for target in segments
            ]
        )
        for target, diff in zip(segments, diffs, strict=True):
            if diff.entered or diff.exited:
                changes[target.node] = diff
        for target in level:
            if isinstance(target, _TagTarget):
                holders = current.tags[target.tag.pk]
                if matched[target.node][0] != holders:
                    changes[target.node] = dynamic_tag_apply(target.tag, matched[target.node][0], holders)
            elif isinstance(target, _StagesTarget):
                # Over every customer asked about: one merged away meanwhile leaves its stage.
                chosen = _furthest(target.stages, matched[target.node], asked)
                diff = stages_apply(target.stages, chosen, current.stages)
                if diff.entered or diff.exited:
                    changes[target.node] = diff
    return changes


def _matched_together(
    targets: list[_Target], ids: str, today: dt.date, inline: set[str]
) -> tuple[dict[str, list[set[int]]], set[int]]:
    """Several targets' rules (in dependency order) in one pass over the customers, each customer's
    rollups read once for all of them: for each rule the ids of those it selects (and the active
    customers among ``ids``), as arrays, so that only ids travel back. A rule that reads a segment
    or tag in ``inline`` evaluated in this pass reads its rule (which is what will be stored)."""
    rules, maintains = [], []
    for target in targets:
        for rule in target.rules:
            rules.append(rule)
            maintains.append(target.node if target.node in inline else None)
    compiled = rules_compile(rules, today=today, few=True, maintains=maintains)
    columns = "".join(f"array_agg(c.id) FILTER (WHERE {rule.where}), " for rule in compiled.rules)
    params = [param for rule in compiled.rules for param in rule.params]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns}array_agg(c.id) FROM cdp_customer AS c {compiled.joins}"  # noqa: S608 (compiled rules; values are parameters)
            " WHERE c.id = ANY(%s::bigint[]) AND c.merged_into_id IS NULL",
            [*params, *compiled.join_params, ids],
        )
        *selected, active = cursor.fetchone()
    matched, column = {}, 0
    for target in targets:
        matched[target.node] = [
            set(members or ()) for members in selected[column : column + len(target.rules)]
        ]
        column += len(target.rules)
    return matched, set(active or ())


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


# -- requests: who must be evaluated again ----------------------------------------------------------

# Customers one pass takes: a burst of events becomes a few large refreshes, not many small ones.
REFRESH_REQUESTS_PER_PASS = 5000


def refresh_request(customer_ids: list[int]) -> None:
    """Asks for these customers to be evaluated again; durable with the caller's transaction (or at
    once outside one). Asking twice before a worker looks is one request."""
    if not customer_ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO segments_refreshrequest (customer_id, requested_at)
            SELECT id, now() FROM unnest(%s::bigint[]) AS x(id) ORDER BY id
            ON CONFLICT (customer_id) DO NOTHING
            """,
            [id_array(set(customer_ids))],
        )


def refresh_requests_take(*, limit: int = REFRESH_REQUESTS_PER_PASS) -> int:
    """Evaluates every pending request, a pass at a time: scores first (events alone), then the
    targets. A pass takes its requests and applies what follows in one transaction, so a worker killed
    midway leaves them for the next; requests another worker holds are skipped, not waited for.
    Returns how many customers were evaluated."""
    from segments.scoring import scores_award

    done = 0
    while True:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    """
                    DELETE FROM segments_refreshrequest WHERE customer_id IN (
                        SELECT customer_id FROM segments_refreshrequest
                        ORDER BY customer_id LIMIT %s FOR UPDATE SKIP LOCKED)
                    RETURNING customer_id
                    """,
                    [limit],
                )
                customer_ids = sorted(row[0] for row in cursor.fetchall())
            if customer_ids:
                scores_award(customer_ids=customer_ids)
                customers_refresh(customer_ids=customer_ids)
        done += len(customer_ids)
        if len(customer_ids) < limit:
            return done
