"""Trigger nodes: which arriving event starts a customer on the journey."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Literal

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from pydantic import Field, field_validator, model_validator

from journeys.nodes import node_type
from journeys.nodes.base import NodeConfig, TriggerType
from segments.evaluator import properties_match
from segments.graph import segment_node, tag_node
from segments.rules import PropertyFilter
from segments.services import NAME_SOURCES


class EventTriggerConfig(NodeConfig):
    event: str = Field(min_length=1, max_length=200, description="The event's name, as tracked.")
    where: list[PropertyFilter] = Field(
        default_factory=list, max_length=10, description="Property filters, as in the rule language."
    )


@node_type("event_trigger")
class EventTrigger(TriggerType):
    label = gettext_lazy("Event happens")
    description = gettext_lazy("Starts when the customer does an event, optionally with property filters.")
    icon = "bolt"
    config = EventTriggerConfig

    def trigger_event(self, config: EventTriggerConfig) -> str:
        return config.event

    def trigger_matches(self, config: EventTriggerConfig, properties: dict, *, today: dt.date) -> bool:
        return properties_match(properties, config.where, today)


class SegmentTriggerConfig(NodeConfig):
    segment: str = Field(min_length=1, max_length=100, description="The segment's key.")
    on: Literal["entered", "exited"] = Field("entered", description="Entering or leaving the segment.")


@node_type("segment_trigger")
class SegmentTrigger(TriggerType):
    label = gettext_lazy("Enters or leaves a segment")
    description = gettext_lazy("Starts when the customer enters (or leaves) a segment.")
    icon = "users"
    config = SegmentTriggerConfig

    def reference_problems(self, config: SegmentTriggerConfig) -> list[str]:
        if config.segment not in NAME_SOURCES["segment"]():
            return [_("There is no segment with the key “%(key)s”.") % {"key": config.segment}]
        return []

    def references(self, config: SegmentTriggerConfig) -> set[str]:
        return {segment_node(config.segment)}

    def trigger_event(self, config: SegmentTriggerConfig) -> str:
        return f"segment_{config.on}"

    def trigger_matches(self, config: SegmentTriggerConfig, properties: dict, *, today: dt.date) -> bool:
        return isinstance(properties, dict) and properties.get("segment") == config.segment


class TagTriggerConfig(NodeConfig):
    tag: str = Field(min_length=1, max_length=100, description="The tag's key.")


@node_type("tag_added_trigger")
class TagAddedTrigger(TriggerType):
    label = gettext_lazy("Gets a tag")
    description = gettext_lazy("Starts when the customer is given a tag, by anyone or any rule.")
    icon = "tag"
    config = TagTriggerConfig

    def reference_problems(self, config: TagTriggerConfig) -> list[str]:
        if config.tag not in NAME_SOURCES["tag"]():
            return [_("There is no tag with the key “%(key)s”.") % {"key": config.tag}]
        return []

    def references(self, config: TagTriggerConfig) -> set[str]:
        return {tag_node(config.tag)}

    def trigger_event(self, config: TagTriggerConfig) -> str:
        return "tag_added"

    def trigger_matches(self, config: TagTriggerConfig, properties: dict, *, today: dt.date) -> bool:
        return isinstance(properties, dict) and properties.get("tag") == config.tag


# -- scheduled audience ----------------------------------------------------------------------------

WEEKDAYS = (1, 2, 3, 4, 5, 6, 7)  # ISO: Monday is 1


class ScheduledTriggerConfig(NodeConfig):
    segment: str = Field(min_length=1, max_length=100, description="The segment whose members enter.")
    repeat: Literal["once", "daily", "weekly"] = Field(
        "once", description="Once at a moment, or every day / every chosen weekday at a time of day."
    )
    at: dt.datetime | None = Field(None, description="For “once”: when (with its UTC offset).")
    time: str | None = Field(
        None,
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="For “daily” and “weekly”: the time of day (HH:MM).",
    )
    weekdays: list[int] = Field(
        default_factory=list, max_length=7, description="For “weekly”: the days, 1 (Monday) to 7 (Sunday)."
    )
    time_zone: str = Field(
        "", max_length=64, description="Whose clock the time reads (IANA); the site's if empty."
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError("not a time zone name (e.g. Asia/Shanghai)") from None
        return value

    @model_validator(mode="after")
    def _when_given(self) -> ScheduledTriggerConfig:
        if self.repeat == "once":
            if self.at is None or self.at.tzinfo is None:
                raise ValueError("give “at”, a moment with its UTC offset")
        elif self.time is None:
            raise ValueError("give “time” (HH:MM)")
        if self.repeat == "weekly" and (
            not self.weekdays or any(day not in WEEKDAYS for day in self.weekdays)
        ):
            raise ValueError("give the weekdays, 1 (Monday) to 7 (Sunday)")
        return self

    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone or settings.TIME_ZONE)

    def occurrence(self, *, now: dt.datetime, since: dt.datetime) -> dt.datetime | None:
        """The latest moment the audience was due to enter, at or before ``now``; None if there is none
        yet. A recurrence counts from ``since`` (when the version was published); a single moment
        already past when it was published is due at once."""
        if self.repeat == "once":
            return self.at if self.at <= now else None
        hour, minute = (int(part) for part in self.time.split(":"))
        local_day = now.astimezone(self.zone()).date()
        for back in range(8):
            day = local_day - dt.timedelta(days=back)
            if self.repeat == "weekly" and day.isoweekday() not in self.weekdays:
                continue
            # The wall-clock time in the zone (a DST gap or overlap resolved by the zone).
            moment = dt.datetime.combine(day, dt.time(hour, minute), tzinfo=self.zone())
            if moment <= now:
                return moment if moment >= since else None
        return None


@node_type("scheduled_trigger")
class ScheduledTrigger(TriggerType):
    label = gettext_lazy("Scheduled audience")
    description = gettext_lazy(
        "A segment's members enter at a moment, or every day or week at a time of day in a time zone."
    )
    icon = "calendar"
    config = ScheduledTriggerConfig

    def reference_problems(self, config: ScheduledTriggerConfig) -> list[str]:
        if config.segment not in NAME_SOURCES["segment"]():
            return [_("There is no segment with the key “%(key)s”.") % {"key": config.segment}]
        return []

    def references(self, config: ScheduledTriggerConfig) -> set[str]:
        return {segment_node(config.segment)}

    def trigger_event(self, config: ScheduledTriggerConfig) -> str | None:
        return None  # the beat enrolls its audience; no event starts it

    def trigger_matches(self, config: ScheduledTriggerConfig, properties: dict, *, today: dt.date) -> bool:
        return False
