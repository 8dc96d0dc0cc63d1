"""Rules checked against the data: a rule that names an event, trait, tag or segment nobody has is
refused with the closest names that do exist (a typo would otherwise select no one, silently)."""

from __future__ import annotations

import difflib

from django.db import connection

from cdp.models import ChannelEventDaily, CustomerRole
from segments.models import Segment, Tag
from segments.rules import (
    AndRule,
    EventRule,
    NotRule,
    OrRule,
    RoleRule,
    RuleError,
    SegmentRule,
    TagRule,
    TraitRule,
    rule_parse,
)

# Trait keys are read from the most recently active customers: enough to know the vocabulary
# without reading a million profiles.
TRAIT_SAMPLE = 20_000


def known_event_names() -> set[str]:
    return set(ChannelEventDaily.objects.values_list("name", flat=True).distinct())


def known_trait_keys() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT DISTINCT jsonb_object_keys(traits) FROM (
                SELECT traits FROM cdp_customer WHERE merged_into_id IS NULL
                ORDER BY last_seen_at DESC NULLS LAST, id DESC LIMIT %s
            ) AS recent
            """,
            [TRAIT_SAMPLE],
        )
        return {key for (key,) in cursor.fetchall()}


def _unknown(kind: str, name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(f'“{option}”' for option in close)}?" if close else ""
    return f"no {kind} is called “{name}”{hint}"


def rule_validate(data):
    """The parsed rule when it is well formed and every name in it exists; else RuleError with
    every problem and its JSON path."""
    rule = rule_parse(data)
    problems = []
    known: dict[str, set[str]] = {}

    def names(kind: str, load) -> set[str]:
        if kind not in known:
            known[kind] = load()
        return known[kind]

    for path, leaf in _leaf_paths(rule, "$"):
        if isinstance(leaf, EventRule) and leaf.event not in names("event", known_event_names):
            problems.append(
                {"path": f"{path}.event", "message": _unknown("event", leaf.event, known["event"])}
            )
        elif isinstance(leaf, TraitRule) and leaf.trait not in names("trait", known_trait_keys):
            problems.append(
                {"path": f"{path}.trait", "message": _unknown("trait", leaf.trait, known["trait"])}
            )
        elif isinstance(leaf, TagRule):
            tags = names("tag", lambda: set(Tag.objects.values_list("key", flat=True)))
            if leaf.tag not in tags:
                problems.append({"path": f"{path}.tag", "message": _unknown("tag", leaf.tag, tags)})
        elif isinstance(leaf, SegmentRule):
            segments = names("segment", lambda: set(Segment.objects.values_list("key", flat=True)))
            if leaf.segment not in segments:
                problems.append(
                    {"path": f"{path}.segment", "message": _unknown("segment", leaf.segment, segments)}
                )
        elif isinstance(leaf, RoleRule):
            roles = names("role", lambda: set(CustomerRole.objects.values_list("key", flat=True)))
            if leaf.role not in roles:
                problems.append({"path": f"{path}.role", "message": _unknown("role", leaf.role, roles)})
    if problems:
        raise RuleError(problems)
    return rule


def _leaf_paths(rule, path: str):
    """Each leaf with its JSON path, as the marketer's rule spells it."""
    if isinstance(rule, AndRule):
        for index, child in enumerate(rule.and_):
            yield from _leaf_paths(child, f"{path}.and[{index}]")
    elif isinstance(rule, OrRule):
        for index, child in enumerate(rule.or_):
            yield from _leaf_paths(child, f"{path}.or[{index}]")
    elif isinstance(rule, NotRule):
        yield from _leaf_paths(rule.not_, f"{path}.not")
    else:
        yield path, rule
