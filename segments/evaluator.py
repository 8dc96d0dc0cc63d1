"""Rules evaluated in memory on one customer, for decisions that cannot wait for a refresh (a journey
asking "is this customer a VIP?" the moment an event arrives).

``facts_load`` reads only what the rule needs (raw events only for event leaves with property
filters); ``rule_matches`` gives the same answer the SQL compiler does on the same data."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings

from cdp.models import Consent, Customer, CustomerEventDaily, CustomerEventStats, Event
from cdp.roles import customer_role_keys
from segments.models import CustomerScore, CustomerStage, CustomerTag, SegmentMember
from segments.rules import (
    MISSING,
    AndRule,
    Comparison,
    ConsentRule,
    EventRule,
    MomentTest,
    NotRule,
    OrRule,
    PropertyFilter,
    RoleRule,
    ScoreRule,
    SegmentRule,
    StageRule,
    TagRule,
    TraitRule,
    count_passes,
    date_of,
    event_window,
    json_date,
    json_equal,
    last_days,
    rule_leaves,
    score_passes,
)


@dataclass
class CustomerFacts:
    traits: dict
    roles: list[str]
    # per event name: (first time, last time, count)
    stats: dict[str, tuple[dt.datetime, dt.datetime, int]] = field(default_factory=dict)
    daily: dict[str, dict[dt.date, int]] = field(default_factory=dict)
    # raw events, only for the names the rule filters by property: name -> [(time, properties)]
    events: dict[str, list[tuple[dt.datetime, dict]]] = field(default_factory=dict)
    tags: set[str] = field(default_factory=set)
    segments: set[str] = field(default_factory=set)
    consents: dict[str, str] = field(default_factory=dict)
    stage: str | None = None
    score: int = 0


def facts_load(*, customer: Customer, rule) -> CustomerFacts:
    leaves = rule_leaves(rule)
    names = {leaf.event for leaf in leaves if isinstance(leaf, EventRule)}
    filtered = {leaf.event for leaf in leaves if isinstance(leaf, EventRule) and leaf.where}
    facts = CustomerFacts(traits=customer.traits, roles=customer_role_keys(customer))
    for stat in CustomerEventStats.objects.filter(customer=customer, name__in=names):
        facts.stats[stat.name] = (stat.first_at, stat.last_at, stat.count)
    if any(isinstance(leaf, EventRule) and (leaf.within_days or leaf.between) for leaf in leaves):
        daily: dict[str, dict[dt.date, int]] = defaultdict(dict)
        for row in CustomerEventDaily.objects.filter(customer=customer, name__in=names):
            daily[row.name][row.day] = row.count
        facts.daily = dict(daily)
    if filtered:
        events: dict[str, list] = defaultdict(list)
        for name, moment, properties in Event.objects.filter(
            customer=customer, name__in=filtered
        ).values_list("name", "timestamp", "properties"):
            events[name].append((moment, properties))
        facts.events = dict(events)
    if any(isinstance(leaf, TagRule) for leaf in leaves):
        facts.tags = set(CustomerTag.objects.filter(customer=customer).values_list("tag__key", flat=True))
    if any(isinstance(leaf, SegmentRule) for leaf in leaves):
        facts.segments = set(
            SegmentMember.objects.filter(customer=customer).values_list("segment__key", flat=True)
        )
    if any(isinstance(leaf, ConsentRule) for leaf in leaves):
        facts.consents = dict(Consent.objects.filter(customer=customer).values_list("channel", "status"))
    if any(isinstance(leaf, StageRule) for leaf in leaves):
        facts.stage = (
            CustomerStage.objects.filter(customer=customer).values_list("stage__key", flat=True).first()
        )
    if any(isinstance(leaf, ScoreRule) for leaf in leaves):
        facts.score = (
            CustomerScore.objects.filter(customer=customer).values_list("points", flat=True).first() or 0
        )
    return facts


def _ordered(actual, op: str, value) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number:
        if not isinstance(actual, (int, float)) or isinstance(actual, bool):
            return False
    elif not isinstance(actual, str):
        return False
    return {"gt": actual > value, "gte": actual >= value, "lt": actual < value, "lte": actual <= value}[op]


def comparison_matches(actual, test: Comparison, today: dt.date) -> bool:
    """``actual`` is the JSON value (MISSING when the key is absent)."""
    op, value = test.op, test.value
    present = actual is not MISSING
    if op == "eq":
        return present and json_equal(actual, value)
    if op == "ne":
        return not (present and json_equal(actual, value))
    if op in ("gt", "gte", "lt", "lte"):
        return present and _ordered(actual, op, value)
    if op == "between":
        return present and _ordered(actual, "gte", value[0]) and _ordered(actual, "lte", value[1])
    if op == "contains":
        if isinstance(actual, str):
            return isinstance(value, str) and value in actual
        if isinstance(actual, list):
            return any(json_equal(element, value) for element in actual)
        return False
    if op == "in":
        return present and any(json_equal(actual, option) for option in value)
    if op == "exists":
        return present and actual is not None
    if op == "not_exists":
        return not (present and actual is not None)
    day = json_date(actual) if present else None
    if day is None:
        return False
    if op == "within_last_days":
        first, last = last_days(value, today)
        return first <= day <= last
    if op == "before":
        return day < date_of(value, today)
    if op == "after":
        return day > date_of(value, today)
    raise ValueError(f"unknown operator {op}")


def _local_day(moment: dt.datetime) -> dt.date:
    return moment.astimezone(zoneinfo.ZoneInfo(settings.TIME_ZONE)).date()


def _moment_matches(moment: dt.datetime | None, test: MomentTest, today: dt.date) -> bool:
    if moment is None:
        return False
    day = _local_day(moment)
    if test.op == "within_last_days":
        first, last = last_days(test.value, today)
        return first <= day <= last
    limit = date_of(test.value, today)
    return day < limit if test.op == "before" else day > limit


def properties_match(properties, where: list[PropertyFilter], today: dt.date) -> bool:
    """Whether an event's properties pass every filter."""
    return all(
        comparison_matches(
            properties.get(condition.property, MISSING) if isinstance(properties, dict) else MISSING,
            condition.comparison(),
            today,
        )
        for condition in where
    )


def _event_matches(facts: CustomerFacts, rule: EventRule, today: dt.date) -> bool:
    window = event_window(rule, today)
    if rule.where:
        matching = [
            moment
            for moment, properties in facts.events.get(rule.event, [])
            if (window is None or window[0] <= _local_day(moment) <= window[1])
            and properties_match(properties, rule.where, today)
        ]
        if rule.first_time or rule.last_time:
            return all(
                _moment_matches(aggregate(matching) if matching else None, test, today)
                for test, aggregate in ((rule.first_time, min), (rule.last_time, max))
                if test
            )
        count = len(matching)
    elif rule.first_time or rule.last_time:
        stat = facts.stats.get(rule.event)
        if stat is None:
            return False
        return all(
            _moment_matches(moment, test, today)
            for test, moment in ((rule.first_time, stat[0]), (rule.last_time, stat[1]))
            if test
        )
    elif window:
        count = sum(n for day, n in facts.daily.get(rule.event, {}).items() if window[0] <= day <= window[1])
    else:
        count = facts.stats[rule.event][2] if rule.event in facts.stats else 0
    return count_passes(count, rule.count_test)


def rule_matches(rule, facts: CustomerFacts, *, today: dt.date) -> bool:
    if isinstance(rule, AndRule):
        return all(rule_matches(child, facts, today=today) for child in rule.and_)
    if isinstance(rule, OrRule):
        return any(rule_matches(child, facts, today=today) for child in rule.or_)
    if isinstance(rule, NotRule):
        return not rule_matches(rule.not_, facts, today=today)
    if isinstance(rule, TraitRule):
        return comparison_matches(facts.traits.get(rule.trait, MISSING), rule.comparison(), today)
    if isinstance(rule, EventRule):
        return _event_matches(facts, rule, today)
    if isinstance(rule, TagRule):
        return rule.tag in facts.tags
    if isinstance(rule, SegmentRule):
        return rule.segment in facts.segments
    if isinstance(rule, RoleRule):
        return rule.role in facts.roles
    if isinstance(rule, ConsentRule):
        return facts.consents.get(rule.consent) == rule.status
    if isinstance(rule, StageRule):
        return facts.stage == rule.stage
    if isinstance(rule, ScoreRule):
        return score_passes(facts.score, rule.score)
    raise TypeError(f"not a rule: {rule!r}")
