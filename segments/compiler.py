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
    # For a few customers (a refresh after new events): each customer's own counts by index, rather
    # than the set of every customer with such a count.
    few: bool = False
    values: dict = field(default_factory=dict)
    # For a few customers: what the rules ask of each customer's rollups, by what is asked (so that
    # the same question in several rules is asked once), read in one index range per customer and
    # rollup table for all of them (``joins``), instead of one lookup per leaf and customer.
    stats_reads: dict[tuple[str, str], str] = field(default_factory=dict)  # (column, event): alias
    daily_reads: dict[tuple[str, dt.date, dt.date], str] = field(default_factory=dict)  # (event, days)
    # Segments and tags whose rules were compiled in the same pass (``rules_compile``'s ``maintains``):
    # node: the rule's expression, read in place of the stored membership.
    inline: dict[str, str] = field(default_factory=dict)

    def param(self, value) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"%({name})s"

    def json_param(self, value) -> str:
        return f"{self.param(json.dumps(value, ensure_ascii=False))}::jsonb"

    def positional(self, text: str) -> tuple[str, list]:
        params = [self.values[name] for name in PLACEHOLDER.findall(text)]
        return PLACEHOLDER.sub("%s", text), params

    def stats_value(self, column: str, event: str) -> str:
        """The customer's all-time ``count``, ``first_at`` or ``last_at`` of the event (NULL if never)."""
        alias = self.stats_reads.setdefault((column, event), f"s{len(self.stats_reads)}")
        return f"stats.{alias}"

    def daily_count(self, event: str, window: tuple[dt.date, dt.date]) -> str:
        """How many times the customer did the event on these days (NULL if not once)."""
        alias = self.daily_reads.setdefault((event, *window), f"d{len(self.daily_reads)}")
        return f"daily.{alias}"

    def joins(self) -> str:
        """The reads ``stats_value`` and ``daily_count`` asked for, to follow ``FROM cdp_customer AS c``:
        one aggregate row per customer each (an aggregate with no GROUP BY: always one row)."""
        joins = []
        if self.stats_reads:
            columns = ", ".join(
                f"max(s.{column}) FILTER (WHERE s.name = {self.param(event)}) AS {alias}"
                for (column, event), alias in self.stats_reads.items()
            )
            names = sorted({event for _column, event in self.stats_reads})
            joins.append(
                f"CROSS JOIN LATERAL (SELECT {columns} FROM cdp_customereventstats AS s"
                f" WHERE s.customer_id = c.id AND s.name = ANY({self.param(names)}::text[])) AS stats"
            )
        if self.daily_reads:
            columns = ", ".join(
                f"sum(d.count) FILTER (WHERE d.name = {self.param(event)}"
                f" AND d.day BETWEEN {self.param(first)} AND {self.param(last)}) AS {alias}"
                for (event, first, last), alias in self.daily_reads.items()
            )
            names = sorted({event for event, _first, _last in self.daily_reads})
            first = min(first for _event, first, _last in self.daily_reads)
            last = max(last for _event, _first, last in self.daily_reads)
            joins.append(
                f"CROSS JOIN LATERAL (SELECT {columns} FROM cdp_customereventdaily AS d"
                f" WHERE d.customer_id = c.id AND d.name = ANY({self.param(names)}::text[])"
                f" AND d.day BETWEEN {self.param(first)} AND {self.param(last)}) AS daily"
            )
        return " ".join(joins)


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


def _exists(sql: _Sql, rows: str) -> str:
    """``EXISTS`` over ``rows`` (``FROM ... WHERE ...``, correlated with ``c``). Over everyone the
    planner joins it or hashes the matching rows once; for a few customers ``OFFSET 0`` keeps it a
    lookup by index per customer (it stops PostgreSQL hashing every matching row of the table)."""
    return f"EXISTS (SELECT 1 {rows}{' OFFSET 0' if sql.few else ''})"


@dataclass(frozen=True)
class _Rows:
    """The rows an event leaf counts, without the customer: ``FROM table WHERE conditions``."""

    table: str  # "cdp_customereventdaily AS d"
    alias: str
    conditions: list[str]
    total: str  # the count over one customer's rows ("sum(d.count)"), or the row's own count
    one_row: bool = False  # at most one row per customer (the all-time rollup): tested row by row
    positive: str = ""  # a row that counts at all (rollup counts are never negative)

    def of_customer(self, *extra: str) -> str:
        conditions = [f"{self.alias}.customer_id = c.id", *self.conditions, *extra]
        return f"FROM {self.table} WHERE {' AND '.join(conditions)}"

    def customers(self, having: str) -> str:
        conditions = " AND ".join(self.conditions)
        return (
            f"SELECT {self.alias}.customer_id FROM {self.table} WHERE {conditions}"
            f" GROUP BY {self.alias}.customer_id HAVING {having}"
        )


def _event(sql: _Sql, rule: EventRule) -> str:
    window = event_window(rule, sql.today)
    if rule.where:
        return _event_filtered(sql, rule, window)
    if sql.few:
        return _event_rollups_of_customer(sql, rule, window)
    name = sql.param(rule.event)
    if rule.first_time or rule.last_time:
        tests = [f"s.name = {name}"]
        if rule.first_time:
            tests.append(_moment(sql, _local_day(sql, "s.first_at"), rule.first_time))
        if rule.last_time:
            tests.append(_moment(sql, _local_day(sql, "s.last_at"), rule.last_time))
        return _exists(
            sql, f"FROM cdp_customereventstats AS s WHERE s.customer_id = c.id AND {' AND '.join(tests)}"
        )
    if window:
        days = [f"d.name = {name}", f"d.day BETWEEN {sql.param(window[0])} AND {sql.param(window[1])}"]
        daily = _Rows("cdp_customereventdaily AS d", "d", days, "sum(d.count)", positive="d.count > 0")
        return _counted(sql, daily, rule.count_test)
    stats = _Rows("cdp_customereventstats AS s", "s", [f"s.name = {name}"], "s.count", one_row=True)
    return _counted(sql, stats, rule.count_test)


def _event_rollups_of_customer(sql: _Sql, rule: EventRule, window) -> str:
    """For a few customers: the leaf as a test of the customer's own rollups (``_Sql.joins``)."""
    if rule.first_time or rule.last_time:
        tests = []
        for test, column in ((rule.first_time, "first_at"), (rule.last_time, "last_at")):
            if test:
                day = _local_day(sql, sql.stats_value(column, rule.event))
                tests.append(f"COALESCE({_moment(sql, day, test)}, false)")
        return f"({' AND '.join(tests)})"
    count = sql.daily_count(rule.event, window) if window else sql.stats_value("count", rule.event)
    test = rule.count_test
    return f"(COALESCE({count}, 0) {COUNT_OPERATORS[test.op]} {sql.param(test.value)})"


def _event_filtered(sql: _Sql, rule: EventRule, window) -> str:
    """Property filters: only the raw events know them."""
    conditions = [f"e.name = {sql.param(rule.event)}"]
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
    events = _Rows("cdp_event AS e", "e", conditions, "count(*)", positive="true")
    if rule.first_time or rule.last_time:
        return _event_moments(sql, rule, events)
    return _counted(sql, events, rule.count_test)


def _event_moments(sql: _Sql, rule: EventRule, events: _Rows) -> str:
    """First or last time of the events that pass the property filters; false if there are none."""
    moments = [
        (test, f"{aggregate}(e.timestamp)")
        for test, aggregate in ((rule.first_time, "min"), (rule.last_time, "max"))
        if test
    ]
    if sql.few:
        tests = []
        for test, moment in moments:
            day = _local_day(sql, f"(SELECT {moment} {events.of_customer()})")
            tests.append(f"COALESCE({_moment(sql, day, test)}, false)")
        return f"({' AND '.join(tests)})"
    having = " AND ".join(_moment(sql, _local_day(sql, moment), test) for test, moment in moments)
    return f"(c.id IN ({events.customers(having)}))"


def _counted(sql: _Sql, rows: _Rows, test) -> str:
    """A count test. "At least once" and "never" ask whether a row exists; the all-time rollup has
    one row per customer, tested on the row. Other counts: over everyone, set membership (the set of
    customers whose count passes, or fails, read once by event name); for a few customers, their
    own counts by index. (For a few customers the rollups are read through ``_Sql.joins``; only raw
    events come here.)"""
    if test.op == "gte" and test.value == 0:
        return "true"
    number = sql.param(test.value)
    # count >= N, = N (N >= 1): in the set of those with such a count; count <= N, = 0: not in the
    # set of those with more.
    inside = test.op in ("gte", "eq") and test.value >= 1
    op = COUNT_OPERATORS[test.op] if inside else ">"
    if rows.one_row:
        found = _exists(sql, rows.of_customer(f"{rows.total} {op} {number}"))
        return found if inside else f"(NOT {found})"
    if test.op == "gte" and test.value == 1:
        return _exists(sql, rows.of_customer(rows.positive))
    if test.value == 0:  # = 0, <= 0
        return f"(NOT {_exists(sql, rows.of_customer(rows.positive))})"
    if sql.few:
        count = f"COALESCE((SELECT {rows.total} {rows.of_customer()}), 0)"
        return f"({count} {COUNT_OPERATORS[test.op]} {number})"
    members = rows.customers(f"{rows.total} {op} {number}")
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
    # Tags, segments and stages by key: the key's id is looked up once (an InitPlan), then the
    # customer's row by the (id, customer) index.
    if isinstance(rule, (TagRule, SegmentRule)):
        node = f"tag:{rule.tag}" if isinstance(rule, TagRule) else f"segment:{rule.segment}"
        if node in sql.inline:
            return f"({sql.inline[node]})"
    if isinstance(rule, TagRule):
        return _exists(
            sql,
            "FROM segments_customertag AS ct WHERE ct.customer_id = c.id"
            f" AND ct.tag_id = (SELECT t.id FROM segments_tag AS t WHERE t.key = {sql.param(rule.tag)})",
        )
    if isinstance(rule, SegmentRule):
        return _exists(
            sql,
            "FROM segments_segmentmember AS m WHERE m.customer_id = c.id AND m.segment_id ="
            f" (SELECT g.id FROM segments_segment AS g WHERE g.key = {sql.param(rule.segment)})",
        )
    if isinstance(rule, RoleRule):
        # Written as the role index (cdp customer_role_keys) is, so that the index serves it.
        return f"(c.traits ? 'role' AND cdp_role_keys(c.traits) @> ARRAY[{sql.param(rule.role)}]::text[])"
    if isinstance(rule, ConsentRule):
        return _exists(
            sql,
            "FROM cdp_consent AS k WHERE k.customer_id = c.id"
            f" AND k.channel = {sql.param(rule.consent)} AND k.status = {sql.param(rule.status)}",
        )
    if isinstance(rule, StageRule):
        return _exists(
            sql,
            "FROM segments_customerstage AS cs WHERE cs.customer_id = c.id AND cs.stage_id ="
            f" (SELECT ls.id FROM segments_lifecyclestage AS ls WHERE ls.key = {sql.param(rule.stage)})",
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
    where: str  # a boolean SQL expression over cdp_customer AS c (and the joins it was compiled with)
    params: list


@dataclass(frozen=True)
class CompiledRules:
    """Rules compiled together, one expression each. For a few customers they read the rollups
    through ``joins`` (to follow ``FROM cdp_customer AS c``), shared by all of them; over everyone
    ``joins`` is empty."""

    rules: list[CompiledRule]
    joins: str
    join_params: list


def rules_compile(
    rules: list, *, today: dt.date, few: bool = False, maintains: list[str | None] | None = None
) -> CompiledRules:
    """``maintains``: the segment or tag (``segment:<key>``, ``tag:<key>``) each rule keeps, if any,
    with the rules in dependency order. A later rule that reads one of them reads that rule itself
    rather than the stored rows: for a caller that is about to store exactly what the rule selects
    (a refresh), so that a segment and those built on it are evaluated in one pass."""
    sql = _Sql(today=today, few=few)
    expressions = []
    for rule, node in zip(rules, maintains or [None] * len(rules), strict=True):
        expressions.append(_node(sql, rule))
        if node:
            sql.inline[node] = expressions[-1]
    joins, join_params = sql.positional(sql.joins())
    return CompiledRules([CompiledRule(*sql.positional(text)) for text in expressions], joins, join_params)


def rule_compile(rule, *, today: dt.date) -> CompiledRule:
    """One rule over everyone (for a few customers: ``rules_compile``, which also gives the joins)."""
    return rules_compile([rule], today=today).rules[0]


def rule_customer_ids_sql(
    rule, *, today: dt.date, among: list[int] | str | None = None, columns: str = "c.id"
) -> tuple[str, list]:
    """``SELECT c.id FROM cdp_customer AS c WHERE ...``: the active customers the rule selects
    (``among`` these ids only, when given: a list, or an array literal from ``cdp.sqlvalues.id_array``).
    ``columns``: other columns of ``c`` to select instead (a fixed text, never a value)."""
    compiled = rules_compile([rule], today=today, few=among is not None)
    (rule_sql,) = compiled.rules
    if among is None:
        return (
            f"SELECT {columns} FROM cdp_customer AS c WHERE c.merged_into_id IS NULL AND {rule_sql.where}",
            rule_sql.params,
        )
    return (
        f"SELECT {columns} FROM cdp_customer AS c {compiled.joins}"
        f" WHERE c.id = ANY(%s::bigint[]) AND c.merged_into_id IS NULL AND {rule_sql.where}",
        [*compiled.join_params, id_array(among), *rule_sql.params],
    )


def rule_customers(rule, *, today: dt.date) -> QuerySet:
    """The active customers a rule selects, as a queryset (count it, page it, take its ids)."""
    sql, params = rule_customer_ids_sql(rule, today=today)
    return Customer.objects.filter(pk__in=RawSQL(sql, params))


# A compiled rule reads the set of customers an event leaf names ("ordered twice in 30 days") as a
# hashed set; PostgreSQL hashes it only if the set fits in work_mem, and otherwise runs the whole
# set's query again for every customer. A million ids need some 40 MB: give evaluations room.
EVALUATION_WORK_MEM = "256MB"


def evaluation_settings() -> None:
    """For the rest of the current transaction (call inside ``transaction.atomic``): room to hash a
    million ids (work_mem), and no JIT compilation. A compiled rule is a long expression that the
    planner prices high, so JIT compiled and optimised it on every run: about a second for the rules
    of 20 segments over 10,000 customers, more than evaluating them took."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('work_mem', %s, true), set_config('jit', 'off', true)", [EVALUATION_WORK_MEM]
        )


# The older name, which tags and stages still call.
evaluation_memory = evaluation_settings
