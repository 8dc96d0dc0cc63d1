"""Rules to SQL: one boolean expression over the customer ``c``, read from the rollups where they
answer the question (counts per event, per day, first and last time) and from raw events only for
property filters. Every leaf is true or false, never NULL, so ``not`` means what it says.

The meanings are those of ``segments.evaluator`` (a property test holds the two together).

Built from fixed fragments only: every value (names, keys, dates, numbers) is a query parameter."""

# ruff: noqa: S608, S611

from __future__ import annotations

import datetime as dt
import json
import re
import zoneinfo
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL

from cdp.models import Customer
from cdp.sqlvalues import id_array
from segments.rules import (
    AndRule,
    Comparison,
    ConsentRule,
    EventRule,
    MomentTest,
    NotRule,
    OrRule,
    RoleRule,
    ScoreRule,
    SegmentRule,
    StageRule,
    TagRule,
    TraitRule,
    date_of,
    event_window,
    last_days,
)

COUNT_OPERATORS = {"gte": ">=", "lte": "<=", "eq": "="}
ORDER_OPERATORS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


@dataclass
class _Sql:
    """Parameters by name while the text is built (a fragment may be used twice, or built before
    the text around it); ``positional`` turns them into the ``%s`` list the database wants."""

    today: dt.date
    # For a few customers (a refresh after new events): counts per customer by index, rather than
    # the set of every customer with such a count.
    few: bool = False
    values: dict = field(default_factory=dict)

    def param(self, value) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"%({name})s"

    def json_param(self, value) -> str:
        return f"{self.param(json.dumps(value, ensure_ascii=False))}::jsonb"

    def positional(self, text: str) -> tuple[str, list]:
        params = [self.values[name] for name in PLACEHOLDER.findall(text)]
        return PLACEHOLDER.sub("%s", text), params


PLACEHOLDER = re.compile(r"%\((p[0-9]+)\)s")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(sql: _Sql, value) -> str:
    # As text: the decimal JSON wrote, so numeric compares what Python's floats compare.
    return f"{sql.param(json.dumps(value))}::numeric"


def _ordered(sql: _Sql, value_sql, op: str, value) -> str:
    # CASE, not AND: only CASE promises the type test runs before the cast.
    if _is_number(value):
        return (
            f"(CASE WHEN jsonb_typeof({value_sql()}) = 'number'"
            f" THEN ({value_sql()})::numeric {op} {_number(sql, value)} ELSE false END)"
        )
    # Texts in code-point order, as Python compares them ("C" collation: UTF-8 byte order).
    return (
        f"(CASE WHEN jsonb_typeof({value_sql()}) = 'string'"
        f' THEN ({value_sql()} #>> \'{{}}\') COLLATE "C" {op} {sql.param(value)} COLLATE "C" ELSE false END)'
    )


def _comparison(sql: _Sql, value_sql, test: Comparison) -> str:
    """A test of a jsonb value (NULL when the key is missing); ``value_sql()`` writes the expression
    that reads it, with its own parameter each time it is used."""
    op, value = test.op, test.value
    if op == "eq":
        return f"COALESCE({value_sql()} = {sql.json_param(value)}, false)"
    if op == "ne":
        return f"({value_sql()} IS DISTINCT FROM {sql.json_param(value)})"
    if op in ORDER_OPERATORS:
        return f"COALESCE({_ordered(sql, value_sql, ORDER_OPERATORS[op], value)}, false)"
    if op == "between":
        low, high = value
        both = f"{_ordered(sql, value_sql, '>=', low)} AND {_ordered(sql, value_sql, '<=', high)}"
        return f"COALESCE(({both}), false)"
    if op == "contains":
        text_test = (
            f"strpos({value_sql()} #>> '{{}}', {sql.param(value)}) > 0" if isinstance(value, str) else "false"
        )
        return (
            f"COALESCE(CASE jsonb_typeof({value_sql()})"
            f" WHEN 'string' THEN {text_test}"
            f" WHEN 'array' THEN EXISTS (SELECT 1 FROM jsonb_array_elements({value_sql()}) AS element"
            f" WHERE element = {sql.json_param(value)})"
            " ELSE false END, false)"
        )
    if op == "in":
        options = ", ".join(sql.json_param(item) for item in value)
        return f"COALESCE({value_sql()} IN ({options}), false)"
    if op == "exists":
        return f"COALESCE(jsonb_typeof({value_sql()}) <> 'null', false)"
    if op == "not_exists":
        return f"NOT COALESCE(jsonb_typeof({value_sql()}) <> 'null', false)"
    if op == "within_last_days":
        first, last = last_days(value, sql.today)
        return (
            f"COALESCE(cdp_json_date({value_sql()}) BETWEEN {sql.param(first)} AND {sql.param(last)}, false)"
        )
    if op in ("before", "after"):
        sign = "<" if op == "before" else ">"
        return f"COALESCE(cdp_json_date({value_sql()}) {sign} {sql.param(date_of(value, sql.today))}, false)"
    raise ValueError(f"unknown operator {op}")


def _reader(sql: _Sql, column: str, key: str):
    return lambda: f"({column} -> {sql.param(key)})"


def _local_day(sql: _Sql, moment_sql: str) -> str:
    return f"({moment_sql} AT TIME ZONE {sql.param(settings.TIME_ZONE)})::date"


def _moment(sql: _Sql, day_sql: str, test: MomentTest) -> str:
    if test.op == "within_last_days":
        first, last = last_days(test.value, sql.today)
        return f"{day_sql} BETWEEN {sql.param(first)} AND {sql.param(last)}"
    sign = "<" if test.op == "before" else ">"
    return f"{day_sql} {sign} {sql.param(date_of(test.value, sql.today))}"


def _event(sql: _Sql, rule: EventRule) -> str:
    window = event_window(rule, sql.today)
    if rule.where:
        # Property filters: only the raw events know them.
        conditions = [f"e.customer_id = c.id AND e.name = {sql.param(rule.event)}"]
        if window:
            # The same days as moments, so that the timeline index (customer, time) reads only the
            # window's events, not all of the customer's.
            zone = zoneinfo.ZoneInfo(settings.TIME_ZONE)
            start = dt.datetime.combine(window[0], dt.time.min, zone)
            end = dt.datetime.combine(window[1] + dt.timedelta(days=1), dt.time.min, zone)
            conditions.append(f"e.timestamp >= {sql.param(start)} AND e.timestamp < {sql.param(end)}")
        for condition in rule.where:
            conditions.append(
                _comparison(sql, _reader(sql, "e.properties", condition.property), condition.comparison())
            )
        matching = f"FROM cdp_event AS e WHERE {' AND '.join(conditions)}"
        if rule.first_time or rule.last_time:
            tests = []
            for test, aggregate in ((rule.first_time, "min"), (rule.last_time, "max")):
                if test:
                    moment = f"(SELECT {aggregate}(e.timestamp) {matching})"
                    tests.append(f"COALESCE({_moment(sql, _local_day(sql, moment), test)}, false)")
            return f"({' AND '.join(tests)})"
        count = f"(SELECT count(*) {matching})"
    elif rule.first_time or rule.last_time:
        tests = [f"s.customer_id = c.id AND s.name = {sql.param(rule.event)}"]
        if rule.first_time:
            tests.append(_moment(sql, _local_day(sql, "s.first_at"), rule.first_time))
        if rule.last_time:
            tests.append(_moment(sql, _local_day(sql, "s.last_at"), rule.last_time))
        return f"EXISTS (SELECT 1 FROM cdp_customereventstats AS s WHERE {' AND '.join(tests)})"
    else:
        return _counted(sql, rule, window)
    test = rule.count_test
    return f"({count} {COUNT_OPERATORS[test.op]} {sql.param(test.value)})"


def _counted(sql: _Sql, rule: EventRule, window) -> str:
    """A count test from the rollups, as set membership rather than a count per customer: the set
    of customers whose count passes (or fails) is read once, by event name, from the rollups. For a
    few customers, their own counts instead."""
    test = rule.count_test
    if sql.few:
        if window:
            count = (
                "COALESCE((SELECT sum(d.count) FROM cdp_customereventdaily AS d"
                f" WHERE d.customer_id = c.id AND d.name = {sql.param(rule.event)}"
                f" AND d.day BETWEEN {sql.param(window[0])} AND {sql.param(window[1])}), 0)"
            )
        else:
            count = (
                "COALESCE((SELECT s.count FROM cdp_customereventstats AS s"
                f" WHERE s.customer_id = c.id AND s.name = {sql.param(rule.event)}), 0)"
            )
        return f"({count} {COUNT_OPERATORS[test.op]} {sql.param(test.value)})"
    # count >= N, = N (N >= 1): in the set of those with such a count; count <= N, = 0: not in the
    # set of those with more.
    if test.op == "gte" and test.value == 0:
        return "true"
    inside = test.op in ("gte", "eq") and test.value >= 1
    op = {"gte": ">=", "eq": "=", "lte": ">"}[test.op] if inside or test.op == "lte" else ">"
    if window:
        having = f"sum(d.count) {op} {sql.param(test.value)}"
        members = (
            f"SELECT d.customer_id FROM cdp_customereventdaily AS d WHERE d.name = {sql.param(rule.event)}"
            f" AND d.day BETWEEN {sql.param(window[0])} AND {sql.param(window[1])}"
            f" GROUP BY d.customer_id HAVING {having}"
        )
    else:
        members = (
            f"SELECT s.customer_id FROM cdp_customereventstats AS s WHERE s.name = {sql.param(rule.event)}"
            f" AND s.count {op} {sql.param(test.value)}"
        )
    return f"(c.id IN ({members}))" if inside else f"(c.id NOT IN ({members}))"


def _node(sql: _Sql, rule) -> str:
    if isinstance(rule, AndRule):
        return "(" + " AND ".join(_node(sql, child) for child in rule.and_) + ")"
    if isinstance(rule, OrRule):
        return "(" + " OR ".join(_node(sql, child) for child in rule.or_) + ")"
    if isinstance(rule, NotRule):
        return f"(NOT {_node(sql, rule.not_)})"
    if isinstance(rule, TraitRule):
        return _comparison(sql, _reader(sql, "c.traits", rule.trait), rule.comparison())
    if isinstance(rule, EventRule):
        return _event(sql, rule)
    if isinstance(rule, TagRule):
        return (
            "EXISTS (SELECT 1 FROM segments_customertag AS ct JOIN segments_tag AS t ON t.id = ct.tag_id"
            f" WHERE ct.customer_id = c.id AND t.key = {sql.param(rule.tag)})"
        )
    if isinstance(rule, SegmentRule):
        return (
            "EXISTS (SELECT 1 FROM segments_segmentmember AS m"
            " JOIN segments_segment AS g ON g.id = m.segment_id"
            f" WHERE m.customer_id = c.id AND g.key = {sql.param(rule.segment)})"
        )
    if isinstance(rule, RoleRule):
        # Written as the role index (cdp customer_role_keys) is, so that the index serves it.
        return f"(c.traits ? 'role' AND cdp_role_keys(c.traits) @> ARRAY[{sql.param(rule.role)}]::text[])"
    if isinstance(rule, ConsentRule):
        return (
            "EXISTS (SELECT 1 FROM cdp_consent AS k WHERE k.customer_id = c.id"
            f" AND k.channel = {sql.param(rule.consent)} AND k.status = {sql.param(rule.status)})"
        )
    if isinstance(rule, StageRule):
        return (
            "EXISTS (SELECT 1 FROM segments_customerstage AS cs JOIN segments_lifecyclestage AS ls"
            f" ON ls.id = cs.stage_id WHERE cs.customer_id = c.id AND ls.key = {sql.param(rule.stage)})"
        )
    if isinstance(rule, ScoreRule):
        points = (
            "coalesce((SELECT sc.points FROM segments_customerscore AS sc WHERE sc.customer_id = c.id), 0)"
        )
        test = rule.score
        if test.op == "between":
            return f"({points} BETWEEN {sql.param(test.value[0])} AND {sql.param(test.value[1])})"
        op = "=" if test.op == "eq" else ORDER_OPERATORS[test.op]
        return f"({points} {op} {sql.param(test.value)})"
    raise TypeError(f"not a rule: {rule!r}")


@dataclass(frozen=True)
class CompiledRule:
    where: str  # a boolean SQL expression over cdp_customer AS c
    params: list


def rule_compile(rule, *, today: dt.date, few: bool = False) -> CompiledRule:
    sql = _Sql(today=today, few=few)
    return CompiledRule(*sql.positional(_node(sql, rule)))


def rule_customer_ids_sql(rule, *, today: dt.date, among: list[int] | str | None = None) -> tuple[str, list]:
    """``SELECT c.id FROM cdp_customer AS c WHERE ...``: the active customers the rule selects
    (``among`` these ids only, when given: a list, or an array literal from ``cdp.sqlvalues.id_array``)."""
    compiled = rule_compile(rule, today=today, few=among is not None)
    if among is None:
        return (
            f"SELECT c.id FROM cdp_customer AS c WHERE c.merged_into_id IS NULL AND {compiled.where}",
            compiled.params,
        )
    return (
        "SELECT c.id FROM cdp_customer AS c"
        f" WHERE c.id = ANY(%s::bigint[]) AND c.merged_into_id IS NULL AND {compiled.where}",
        [id_array(among), *compiled.params],
    )


def rule_customers(rule, *, today: dt.date) -> QuerySet:
    """The active customers a rule selects, as a queryset (count it, page it, take its ids)."""
    sql, params = rule_customer_ids_sql(rule, today=today)
    return Customer.objects.filter(pk__in=RawSQL(sql, params))


# A compiled rule reads the set of customers an event leaf names ("ordered twice in 30 days") as a
# hashed set; PostgreSQL hashes it only if the set fits in work_mem, and otherwise runs the whole
# set's query again for every customer. A million ids need some 40 MB: give evaluations room.
EVALUATION_WORK_MEM = "256MB"


def evaluation_memory() -> None:
    """Raises work_mem for the rest of the current transaction (call inside ``transaction.atomic``)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL work_mem = '{EVALUATION_WORK_MEM}'")
