"""Trigger nodes: which arriving event starts a customer on the journey."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from pydantic import Field

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
