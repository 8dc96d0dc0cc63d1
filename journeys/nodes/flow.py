"""Flow nodes: delays, waits for events, condition and random splits, goals and exits."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import zoneinfo
from typing import Any, Literal

from django.conf import settings
from django.db import connection
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from journeys.nodes import node_type
from journeys.nodes.base import (
    DEFAULT_HANDLE,
    ConfigProblem,
    End,
    Follow,
    HandlesWhen,
    NodeConfig,
    NodeFailed,
    NodeType,
    StepContext,
    Wait,
    rule_invalid,
    wait_until,
)
from journeys.selectors import event_arrived, events_arrived_since, wait_matches
from segments.compiler import rule_customer_ids_sql
from segments.evaluator import facts_load, properties_match, rule_matches
from segments.rules import PropertyFilter, RuleError, rule_parse, rule_references
from segments.services import rule_validate

MAX_WAIT_SECONDS = 366 * 86400
HANDLE_ID = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")


def customer_zone(customer) -> zoneinfo.ZoneInfo:
    """The customer's own time zone (the ``timezone`` trait, an IANA name) or else the site's."""
    name = (customer.traits or {}).get("timezone") if isinstance(customer.traits, dict) else None
    if isinstance(name, str) and name:
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


# -- delay -----------------------------------------------------------------------------------------


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLOCK_TIME = r"^([01]\d|2[0-3]):[0-5]\d$"


class WeekdayWindow(BaseModel):
    """When the customer may be reached: these days, between these times of day."""

    model_config = ConfigDict(extra="forbid")

    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"], min_length=1, max_length=7
    )
    start: str = Field("09:00", pattern=CLOCK_TIME, description="Opens at (HH:MM).")
    end: str = Field("18:00", pattern=CLOCK_TIME, description="Closes at (HH:MM), after it opens.")

    @model_validator(mode="after")
    def _opens_first(self) -> WeekdayWindow:
        if self.end <= self.start:
            raise ValueError("the window must close (end) after it opens (start)")
        return self

    def next_open(self, moment: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
        """``moment`` itself when it is inside the window, else when the window next opens."""
        local = moment.astimezone(zone)
        start, end = (dt.time(*(int(part) for part in text.split(":"))) for text in (self.start, self.end))
        for offset in range(8):
            day = local.date() + dt.timedelta(days=offset)
            if WEEKDAYS[day.weekday()] not in self.days:
                continue
            # combine() keeps the wall clock: a DST change is the zone's to handle.
            opens = dt.datetime.combine(day, start, tzinfo=zone)
            closes = dt.datetime.combine(day, end, tzinfo=zone)
            if local < opens:
                return opens.astimezone(dt.UTC)
            if local < closes:
                return moment
        raise AssertionError("a window with at least one day opens within a week")


class DelayConfig(NodeConfig):
    seconds: int | None = Field(None, ge=1, le=MAX_WAIT_SECONDS, description="Wait this long.")
    until_time: str | None = Field(
        None,
        pattern=CLOCK_TIME,
        description="Or wait until this time of day (HH:MM), the next time it comes.",
    )
    window: WeekdayWindow | None = Field(
        None,
        description=(
            "Or wait until the customer may be reached (e.g. Mon–Fri 09:00–18:00); with seconds, "
            "the first moment in the window once they have passed."
        ),
    )
    time_zone: Literal["customer", "site"] = Field(
        "customer",
        description="Whose clock “until_time” and the window read: the customer's time zone, or the site's.",
    )

    @model_validator(mode="after")
    def _one_way(self) -> DelayConfig:
        if self.until_time is not None and (self.seconds is not None or self.window is not None):
            raise ValueError("until_time cannot be combined with seconds or a window")
        if self.seconds is None and self.until_time is None and self.window is None:
            raise ValueError("give seconds, until_time or a window")
        return self


@node_type("delay")
class Delay(NodeType):
    kind = "flow"
    label = gettext_lazy("Delay")
    description = gettext_lazy(
        "Waits for a duration, until a time of day, or until a weekday window opens, in the customer's "
        "time zone."
    )
    icon = "clock"
    config = DelayConfig

    def enter(self, ctx: StepContext) -> Wait | Follow:
        config: DelayConfig = ctx.config
        zone = (
            customer_zone(ctx.customer)
            if config.time_zone == "customer"
            else zoneinfo.ZoneInfo(settings.TIME_ZONE)
        )
        if config.window is not None:
            earliest = ctx.now + dt.timedelta(seconds=config.seconds or 0)
            opens = config.window.next_open(earliest, zone)
            if opens <= ctx.now:
                return Follow(DEFAULT_HANDLE, reason=f"inside the window ({zone.key})")
            return Wait(until=opens, reason=f"until the window opens ({zone.key})")
        if config.seconds is not None:
            return Wait(until=ctx.now + dt.timedelta(seconds=config.seconds))
        hour, minute = (int(part) for part in config.until_time.split(":"))
        local = ctx.now.astimezone(zone)
        target = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if target <= local:
            target = (local + dt.timedelta(days=1)).replace(hour=hour, minute=minute, second=0, microsecond=0)
        # replace() on a zone-aware time keeps the wall clock, so a DST change is handled by the zone.
        return Wait(until=target.astimezone(dt.UTC), reason=f"until {config.until_time} {zone.key}")

    def resume(self, ctx: StepContext) -> Follow:
        return Follow(DEFAULT_HANDLE)


# -- wait for an event -----------------------------------------------------------------------------


class WaitForEventConfig(NodeConfig):
    event: str = Field(min_length=1, max_length=200, description="The event to wait for.")
    timeout_seconds: int = Field(ge=1, le=MAX_WAIT_SECONDS, description="Give up after this long.")
    match_property: str = Field(
        "",
        max_length=200,
        description="Only an event whose property of this name equals the trigger event's (e.g. cart_id).",
    )
    where: list[PropertyFilter] = Field(default_factory=list, max_length=10, description="Property filters.")


@node_type("wait_for_event")
class WaitForEvent(NodeType):
    kind = "flow"
    label = gettext_lazy("Wait for an event")
    description = gettext_lazy("Waits until the customer does an event, or gives up after a time.")
    icon = "hourglass"
    config = WaitForEventConfig
    handles = ("happened", "timed_out")

    def enter(self, ctx: StepContext) -> Wait:
        config: WaitForEventConfig = ctx.config
        return Wait(
            until=ctx.now + dt.timedelta(seconds=config.timeout_seconds),
            events=(config.event,),
            match_property=config.match_property,
            match_value=self._value(ctx),
        )

    def resume(self, ctx: StepContext) -> Follow | Wait:
        config: WaitForEventConfig = ctx.config
        today = ctx.now.astimezone(zoneinfo.ZoneInfo(settings.TIME_ZONE)).date()
        woken = ctx.woken_by
        if woken is not None and properties_match(woken.get("properties") or {}, config.where, today):
            return Follow("happened", reason=f"event {woken.get('id')}")
        # An event that arrived while this wait was being written was not seen by the matcher: look.
        arrived = event_arrived(
            customer_id=ctx.customer.pk,
            name=config.event,
            since=dt.datetime.fromisoformat(ctx.waiting_match["since"]),
            match_property=config.match_property,
            match_value=self._value(ctx),
            where=config.where,
            today=today,
        )
        if arrived is not None:
            return Follow("happened", reason=f"event {arrived}")
        until = wait_until(ctx, config.timeout_seconds)
        if ctx.now >= until:
            return Follow("timed_out")
        return Wait(
            until=until,
            events=(config.event,),
            match_property=config.match_property,
            match_value=self._value(ctx),
        )

    def resume_many(self, ctxs: list[StepContext]) -> list[Follow | Wait]:
        """Waits that ended together: the events they may have missed are read in one query."""
        if len(ctxs) == 1:
            return [self.resume(ctxs[0])]
        config: WaitForEventConfig = ctxs[0].config
        today = ctxs[0].now.astimezone(zoneinfo.ZoneInfo(settings.TIME_ZONE)).date()
        since = {id(ctx): dt.datetime.fromisoformat(ctx.waiting_match["since"]) for ctx in ctxs}
        arrived: dict[int, list[tuple]] = {}
        for event_id, customer_id, received_at, properties in events_arrived_since(
            customer_ids=[ctx.customer.pk for ctx in ctxs], name=config.event, since=min(since.values())
        ):
            arrived.setdefault(customer_id, []).append((event_id, received_at, properties))
        results: list[Follow | Wait] = []
        for ctx in ctxs:
            woken = ctx.woken_by
            if woken is not None and properties_match(woken.get("properties") or {}, config.where, today):
                results.append(Follow("happened", reason=f"event {woken.get('id')}"))
                continue
            value = self._value(ctx)
            found = next(
                (
                    event_id
                    for event_id, received_at, properties in arrived.get(ctx.customer.pk, ())
                    if received_at >= since[id(ctx)]
                    and wait_matches(properties, config.match_property, value)
                    and properties_match(properties, config.where, today)
                ),
                None,
            )
            if found is not None:
                results.append(Follow("happened", reason=f"event {found}"))
                continue
            until = wait_until(ctx, config.timeout_seconds)
            if ctx.now >= until:
                results.append(Follow("timed_out"))
                continue
            results.append(
                Wait(
                    until=until,
                    events=(config.event,),
                    match_property=config.match_property,
                    match_value=value,
                )
            )
        return results

    @staticmethod
    def _value(ctx: StepContext):
        prop = ctx.config.match_property
        return ctx.enrollment.context.get(prop) if prop else None


# -- condition split -------------------------------------------------------------------------------


class _Branch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The branch's handle (letters, digits, - and _).")
    label: str = Field("", max_length=200)

    @field_validator("id")
    @classmethod
    def _handle_like(cls, value: str) -> str:
        if not HANDLE_ID.match(value) or value == "else":
            raise ValueError("use 1 to 40 letters, digits, - and _ (and not “else”)")
        return value


class RuleBranch(_Branch):
    rule: dict[str, Any] = Field(description="A rule of the rule language (docs/rules.md).")
    _parsed: Any = PrivateAttr(default=None)

    @field_validator("rule")
    @classmethod
    def _rule_parses(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Validated here rather than after the model so each problem is reported at the rule field,
        # with its JSON path.
        try:
            rule_parse(value)
        except RuleError as error:
            raise rule_invalid(error) from None
        return value

    def model_post_init(self, context: Any) -> None:
        # Parsed again (graphs are parsed once per version and process) for the engine's evaluator.
        self._parsed = rule_parse(self.rule)


def _unique_ids(branches: list[_Branch]) -> None:
    ids = [branch.id for branch in branches]
    if len(set(ids)) != len(ids):
        raise ValueError("branch ids must differ")


class ConditionConfig(NodeConfig):
    branches: list[RuleBranch] = Field(
        min_length=1, max_length=20, description="Tested in order; the first whose rule holds is taken."
    )

    @model_validator(mode="after")
    def _distinct(self) -> ConditionConfig:
        _unique_ids(self.branches)
        return self


@node_type("condition")
class Condition(NodeType):
    kind = "flow"
    label = gettext_lazy("Condition")
    description = gettext_lazy("Sends the customer down the first branch whose rule holds, else “else”.")
    icon = "split"
    config = ConditionConfig
    handles = ("else",)
    dynamic_handles = True

    def output_handles(self, config: ConditionConfig) -> list[str]:
        return [branch.id for branch in config.branches] + ["else"]

    def reference_problems(self, config: ConditionConfig) -> list[ConfigProblem]:
        problems = []
        for index, branch in enumerate(config.branches):
            try:
                rule_validate(branch.rule)
            except RuleError as error:
                problems += [
                    ConfigProblem(problem["message"], field=f"branches.{index}.rule", path=problem["path"])
                    for problem in error.problems
                ]
        return problems

    def references(self, config: ConditionConfig) -> set[str]:
        return set().union(*(rule_references(branch._parsed) for branch in config.branches))

    def enter(self, ctx: StepContext) -> Follow:
        today = ctx.now.astimezone(zoneinfo.ZoneInfo(settings.TIME_ZONE)).date()
        for branch in ctx.config.branches:
            facts = facts_load(customer=ctx.customer, rule=branch._parsed)
            if rule_matches(branch._parsed, facts, today=today):
                return Follow(branch.id, reason=f"rule of {branch.id} holds")
        return Follow("else", reason="no branch's rule holds")

    def enter_many(self, ctxs: list[StepContext]) -> list[Follow]:
        """A batch at the condition: each branch's rule is one query over the customers no earlier
        branch took (the rule language compiles to SQL that agrees with the in-memory evaluator)."""
        if len(ctxs) == 1:
            return [self.enter(ctxs[0])]
        today = ctxs[0].now.astimezone(zoneinfo.ZoneInfo(settings.TIME_ZONE)).date()
        taken: dict[int, Follow] = {}
        for branch in ctxs[0].config.branches:
            left = [ctx.customer.pk for ctx in ctxs if ctx.customer.pk not in taken]
            if not left:
                break
            selected, params = rule_customer_ids_sql(branch._parsed, today=today, among=left)
            with connection.cursor() as cursor:
                cursor.execute(selected, params)
                for (customer_id,) in cursor.fetchall():
                    taken[customer_id] = Follow(branch.id, reason=f"rule of {branch.id} holds")
        otherwise = Follow("else", reason="no branch's rule holds")
        return [taken.get(ctx.customer.pk, otherwise) for ctx in ctxs]


# -- random split ----------------------------------------------------------------------------------


class PercentBranch(_Branch):
    percent: int = Field(ge=0, le=100)


class RandomSplitConfig(NodeConfig):
    branches: list[PercentBranch] = Field(min_length=2, max_length=10)

    @model_validator(mode="after")
    def _whole(self) -> RandomSplitConfig:
        _unique_ids(self.branches)
        if sum(branch.percent for branch in self.branches) != 100:
            raise ValueError("the percentages must add up to 100")
        return self


@node_type("random_split")
class RandomSplit(NodeType):
    kind = "flow"
    label = gettext_lazy("Random split")
    description = gettext_lazy(
        "Splits customers by percentages (A/B); a customer always gets the same branch."
    )
    icon = "shuffle"
    config = RandomSplitConfig
    handles = ()
    dynamic_handles = True

    def output_handles(self, config: RandomSplitConfig) -> list[str]:
        return [branch.id for branch in config.branches]

    def enter(self, ctx: StepContext) -> Follow:
        # Sticky: the same customer at the same node of the same journey always lands in one bucket,
        # in every version and on every visit.
        seed = f"{ctx.enrollment.journey_id}:{ctx.node_id}:{ctx.customer.pk}".encode()
        bucket = int.from_bytes(hashlib.sha256(seed).digest()[:8], "big") % 100
        floor = 0
        for branch in ctx.config.branches:
            floor += branch.percent
            if bucket < floor:
                return Follow(branch.id, reason=f"bucket {bucket}")
        raise NodeFailed(_("The split's percentages do not cover bucket %(bucket)s.") % {"bucket": bucket})


# -- goal and exit ---------------------------------------------------------------------------------


class GoalConfig(NodeConfig):
    exit: bool = Field(False, description="Whether reaching the goal ends the journey for the customer.")


@node_type("goal")
class Goal(NodeType):
    kind = "flow"
    label = gettext_lazy("Goal")
    description = gettext_lazy("Counts the customer as converted; optionally ends the journey for them.")
    icon = "flag"
    config = GoalConfig
    # Reaching a goal that ends the journey leads nowhere.
    handles_when = (HandlesWhen(field="exit", equals=True, handles=()),)

    def enter(self, ctx: StepContext) -> Follow | End:
        if ctx.enrollment.goal_reached_at is None:
            ctx.enrollment.goal_reached_at = ctx.now
        return End(reason="goal") if ctx.config.exit else Follow(DEFAULT_HANDLE)


@node_type("exit")
class Exit(NodeType):
    kind = "flow"
    label = gettext_lazy("Exit")
    description = gettext_lazy("Ends the journey for the customer.")
    icon = "stop"
    handles = ()

    def enter(self, ctx: StepContext) -> End:
        return End(reason="exit")
