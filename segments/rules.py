"""The rule language shared by segments, dynamic tags, lifecycle stages and scores.

A rule is a JSON tree: ``{"and": [...]}``, ``{"or": [...]}`` and ``{"not": {...}}`` to any depth,
over leaves that test a trait, an event, a tag, a segment, a role, a consent, the lifecycle stage or
the score (see docs/rules.md).
``rule_parse`` validates a tree and returns every problem with its JSON path; the SQL compiler
(``segments.compiler``) and the in-memory evaluator (``segments.evaluator``) both read the parsed
models, and a property test keeps them in agreement.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

MAX_DAYS = 3660


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DaysAgo(_Node):
    """A date relative to today: ``{"days_ago": 30}``."""

    days_ago: int = Field(ge=0, le=MAX_DAYS)


DateValue = Union[dt.date, DaysAgo]  # noqa: UP007


class Comparison(_Node):
    """A test of one JSON value (a trait, or an event property): the shared grammar of both."""

    op: Literal[
        "eq",
        "ne",
        "gt",
        "gte",
        "lt",
        "lte",
        "between",
        "contains",
        "in",
        "exists",
        "not_exists",
        "within_last_days",
        "before",
        "after",
    ]
    value: Any = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> Comparison:
        op, value = self.op, self.value
        if op in ("exists", "not_exists"):
            if value is not None:
                raise ValueError(f"“{op}” takes no value")
        elif op in ("eq", "ne", "contains"):
            _scalar(value, op)
        elif op in ("gt", "gte", "lt", "lte"):
            _orderable(value, op)
        elif op == "between":
            if not isinstance(value, list) or len(value) != 2:
                raise ValueError("“between” takes a list of two values, lowest first")
            for item in value:
                _orderable(item, op)
            if type(value[0]) is not type(value[1]) and not all(_is_number(item) for item in value):
                raise ValueError("“between” takes two values of the same kind (two numbers, or two texts)")
        elif op == "in":
            if not isinstance(value, list) or not value:
                raise ValueError("“in” takes a non-empty list of values")
            for item in value:
                _scalar(item, op)
        elif op == "within_last_days":
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_DAYS:
                raise ValueError(f"“within_last_days” takes a whole number of days from 1 to {MAX_DAYS}")
        elif op in ("before", "after"):
            object.__setattr__(self, "value", _date_value(value, op))
        return self


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _scalar(value, op: str) -> None:
    if not isinstance(value, (str, int, float, bool)) or value is None:
        raise ValueError(f"“{op}” takes a text, a number or true/false")


def _orderable(value, op: str) -> None:
    if not (_is_number(value) or isinstance(value, str)):
        raise ValueError(f"“{op}” takes a number or a text")


def _date_value(value, op: str) -> dt.date | DaysAgo:
    if isinstance(value, dict):
        return DaysAgo.model_validate(value)
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    if isinstance(value, (dt.date, DaysAgo)):
        return value
    raise ValueError(f'“{op}” takes a date (2026-01-31) or {{"days_ago": N}}')


class _Compared(_Node):
    """A named JSON value under test: a trait, or an event property."""

    op: str
    value: Any = None
    # Operators this kind of value does not take (dates make no sense for event properties).
    refused_ops: ClassVar[tuple[str, ...]] = ()

    def comparison(self) -> Comparison:
        return Comparison(op=self.op, value=self.value)

    @model_validator(mode="after")
    def _check(self) -> _Compared:
        if self.op in self.refused_ops:
            allowed = [
                op for op in Comparison.model_fields["op"].annotation.__args__ if op not in self.refused_ops
            ]
            raise ValueError(f"{self.kind_label} take {', '.join(allowed)}")
        self.comparison()  # validates op and value
        return self


class TraitRule(_Compared):
    trait: str = Field(min_length=1, max_length=200)
    kind_label: ClassVar[str] = "traits"


class PropertyFilter(_Compared):
    property: str = Field(min_length=1, max_length=200)
    kind_label: ClassVar[str] = "event properties"
    refused_ops: ClassVar[tuple[str, ...]] = ("within_last_days", "before", "after")


class CountTest(_Node):
    op: Literal["gte", "lte", "eq"] = "gte"
    value: int = Field(default=1, ge=0, le=1_000_000)


class MomentTest(_Node):
    """When the customer did the event the first or last time (within the event's filters)."""

    op: Literal["within_last_days", "before", "after"]
    value: Any

    @model_validator(mode="after")
    def _check(self) -> MomentTest:
        Comparison(op=self.op, value=self.value)
        if self.op != "within_last_days":
            object.__setattr__(self, "value", _date_value(self.value, self.op))
        return self


class EventRule(_Node):
    event: str = Field(min_length=1, max_length=200)
    did: bool = True
    count: CountTest | None = None
    within_days: int | None = Field(default=None, ge=1, le=MAX_DAYS)
    between: tuple[dt.date, dt.date] | None = None
    where: list[PropertyFilter] = Field(default_factory=list, max_length=10)
    first_time: MomentTest | None = None
    last_time: MomentTest | None = None

    @model_validator(mode="after")
    def _check(self) -> EventRule:
        if self.within_days is not None and self.between is not None:
            raise ValueError("give either within_days or between, not both")
        if self.between is not None and self.between[0] > self.between[1]:
            raise ValueError("between: the first date must not be after the second")
        if not self.did and self.count is not None:
            raise ValueError("“did”: false already means a count of 0; leave out count")
        if (self.first_time or self.last_time) and (self.count is not None or not self.did):
            raise ValueError("first_time / last_time test when the event happened; leave out count and did")
        if (self.first_time or self.last_time) and (self.within_days or self.between):
            raise ValueError(
                "first_time / last_time carry their own dates; leave out within_days and between"
            )
        return self

    @property
    def count_test(self) -> CountTest:
        """What the event leaf asks of the number of matching events."""
        if not self.did:
            return CountTest(op="eq", value=0)
        return self.count or CountTest()


class TagRule(_Node):
    tag: str = Field(min_length=1, max_length=100)


class SegmentRule(_Node):
    segment: str = Field(min_length=1, max_length=100)


class RoleRule(_Node):
    role: str = Field(min_length=1, max_length=40)

    @field_validator("role")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()


class ConsentRule(_Node):
    consent: str = Field(min_length=1, max_length=20)
    status: Literal["subscribed", "unsubscribed"] = "subscribed"


class StageRule(_Node):
    """The customer's lifecycle stage now: ``{"stage": "nurturing"}``."""

    stage: str = Field(min_length=1, max_length=100)


class ScoreTest(_Node):
    op: Literal["eq", "gt", "gte", "lt", "lte", "between"] = "gte"
    value: int | tuple[int, int]

    @model_validator(mode="after")
    def _check(self) -> ScoreTest:
        if self.op == "between":
            if not isinstance(self.value, tuple) or self.value[0] > self.value[1]:
                raise ValueError("“between” takes two whole numbers, lowest first")
        elif not isinstance(self.value, int):
            raise ValueError(f"“{self.op}” takes a whole number of points")
        return self


class ScoreRule(_Node):
    """The customer's score now (0 for a customer who has none): ``{"score": {"op": "gte", "value": 50}}``."""

    score: ScoreTest


class AndRule(_Node):
    and_: list[Rule] = Field(alias="and", min_length=1, max_length=50)


class OrRule(_Node):
    or_: list[Rule] = Field(alias="or", min_length=1, max_length=50)


class NotRule(_Node):
    not_: Rule = Field(alias="not")


Rule = Annotated[
    Union[  # noqa: UP007
        AndRule,
        OrRule,
        NotRule,
        TraitRule,
        EventRule,
        TagRule,
        SegmentRule,
        RoleRule,
        ConsentRule,
        StageRule,
        ScoreRule,
    ],
    Field(union_mode="left_to_right"),
]
for _model in (AndRule, OrRule, NotRule):
    _model.model_rebuild()

LEAF_KEYS = {
    "and": AndRule,
    "or": OrRule,
    "not": NotRule,
    "trait": TraitRule,
    "event": EventRule,
    "tag": TagRule,
    "segment": SegmentRule,
    "role": RoleRule,
    "consent": ConsentRule,
    "stage": StageRule,
    "score": ScoreRule,
}


class RuleError(ValueError):
    """Every problem of a rule, each as {"path": "$.and[1].count.value", "message": "..."}."""

    def __init__(self, problems: list[dict]):
        super().__init__("; ".join(f"{problem['path']}: {problem['message']}" for problem in problems))
        self.problems = problems


def _path(location: tuple) -> str:
    path = "$"
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _unknown_fields(data: dict, kind: str, location: tuple, problems: list[dict]) -> None:
    extra = sorted(set(data) - {kind})
    if extra:
        problems.append({"path": _path(location), "message": f"unknown field(s): {', '.join(extra)}"})


def _parse_node(data, location: tuple, problems: list[dict]):
    """Picks the node type by its key (so errors speak of the node the marketer meant, not of every
    alternative), then validates it; children are parsed the same way, recursively."""
    if not isinstance(data, dict):
        problems.append({"path": _path(location), "message": 'must be an object such as {"and": [...]}'})
        return None
    kinds = [key for key in data if key in LEAF_KEYS]
    if len(kinds) != 1:
        known = ", ".join(LEAF_KEYS)
        message = (
            f"must have exactly one of: {known}"
            if not kinds
            else f"has both {kinds[0]} and {kinds[1]}: one per node (combine them with and/or)"
        )
        problems.append({"path": _path(location), "message": message})
        return None
    kind = kinds[0]
    if kind in ("and", "or"):
        children = data[kind]
        if not isinstance(children, list) or not children:
            problems.append(
                {"path": _path((*location, kind)), "message": "must be a non-empty list of rules"}
            )
            return None
        extra = set(data) - {kind}
        if extra:
            problems.append(
                {"path": _path(location), "message": f"unknown field(s): {', '.join(sorted(extra))}"}
            )
        parsed = [_parse_node(child, (*location, kind, i), problems) for i, child in enumerate(children)]
        return None if None in parsed else LEAF_KEYS[kind].model_validate({kind: parsed})
    if kind == "not":
        extra = set(data) - {kind}
        if extra:
            problems.append(
                {"path": _path(location), "message": f"unknown field(s): {', '.join(sorted(extra))}"}
            )
        child = _parse_node(data["not"], (*location, "not"), problems)
        return None if child is None else NotRule.model_validate({"not": child})
    try:
        return LEAF_KEYS[kind].model_validate(data)
    except ValidationError as error:
        for detail in error.errors():
            where = tuple(part for part in detail["loc"] if not str(part).startswith("function-"))
            message = detail["msg"].removeprefix("Value error, ")
            problems.append({"path": _path((*location, *where)), "message": message})
        return None


def rule_parse(data) -> Rule:
    """The validated rule, or RuleError listing every problem with its JSON path."""
    problems: list[dict] = []
    rule = _parse_node(data, (), problems)
    if problems:
        raise RuleError(problems)
    return rule


def rule_leaf_paths(rule, path: str = "$"):
    """Each leaf of a rule with its JSON path, as the marketer's rule spells it."""
    if isinstance(rule, AndRule):
        for index, child in enumerate(rule.and_):
            yield from rule_leaf_paths(child, f"{path}.and[{index}]")
    elif isinstance(rule, OrRule):
        for index, child in enumerate(rule.or_):
            yield from rule_leaf_paths(child, f"{path}.or[{index}]")
    elif isinstance(rule, NotRule):
        yield from rule_leaf_paths(rule.not_, f"{path}.not")
    else:
        yield path, rule


def rule_leaves(rule) -> list:
    """Every leaf of a rule (for the names it refers to)."""
    return [leaf for _path, leaf in rule_leaf_paths(rule)]


def rule_segments(rule) -> set[str]:
    """The keys of the segments a rule builds on."""
    return {leaf.segment for leaf in rule_leaves(rule) if isinstance(leaf, SegmentRule)}


def rule_references(rule) -> set[str]:
    """What a rule reads that other rules maintain, as nodes of the refresh graph: ``segment:<key>``,
    ``tag:<key>``, ``stage`` (every stage at once: one stage per customer), and ``score``; also
    ``stage:<key>``, the one stage a leaf names (not a node: what a deletion must ask about)."""
    references = set()
    for leaf in rule_leaves(rule):
        if isinstance(leaf, SegmentRule):
            references.add(f"segment:{leaf.segment}")
        elif isinstance(leaf, TagRule):
            references.add(f"tag:{leaf.tag}")
        elif isinstance(leaf, StageRule):
            references |= {"stage", f"stage:{leaf.stage}"}
        elif isinstance(leaf, ScoreRule):
            references.add("score")
    return references


# Keys of tags, segments and stages, by which rules name them.
KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")


RULE_ADAPTER = TypeAdapter(Rule)


# --------------------------------------------------------------------------------------------------
# Meanings both evaluators share (the SQL compiler writes the same in SQL).

MISSING = object()
ISO_DATE_START = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits only, as in SQL


def json_equal(left, right) -> bool:
    """Equality of two JSON values as PostgreSQL's jsonb has it: 1 equals 1.0, true does not equal 1."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if _is_number(left) and _is_number(right):
        return left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(json_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[key], right[key]) for key in left)
    return type(left) is type(right) and left == right


def json_date(value) -> dt.date | None:
    """The date a JSON value holds ("2026-03-01", or a date-time starting so), else None."""
    if (
        not isinstance(value, str)
        or len(value) < 10
        or not all(
            (char.isascii() and char.isdigit()) if i not in (4, 7) else char == "-"
            for i, char in enumerate(value[:10])
        )
    ):
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def date_of(value: dt.date | DaysAgo, today: dt.date) -> dt.date:
    return today - dt.timedelta(days=value.days_ago) if isinstance(value, DaysAgo) else value


def last_days(days: int, today: dt.date) -> tuple[dt.date, dt.date]:
    """ "Within the last N days": today and the N - 1 days before it."""
    return today - dt.timedelta(days=days - 1), today


def event_window(rule: EventRule, today: dt.date) -> tuple[dt.date, dt.date] | None:
    if rule.within_days is not None:
        return last_days(rule.within_days, today)
    if rule.between is not None:
        return rule.between
    return None


def score_passes(points: int, test: ScoreTest) -> bool:
    if test.op == "between":
        return test.value[0] <= points <= test.value[1]
    return {
        "eq": points == test.value,
        "gt": points > test.value,
        "gte": points >= test.value,
        "lt": points < test.value,
        "lte": points <= test.value,
    }[test.op]


def count_passes(count: int, test: CountTest) -> bool:
    if test.op == "gte":
        return count >= test.value
    if test.op == "lte":
        return count <= test.value
    return count == test.value
