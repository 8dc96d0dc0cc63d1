"""Segments and the rules behind them. Rules are checked against the data: a rule that names an
event, trait, tag, segment, role or stage nobody has is refused with the closest names that do exist (a typo
would otherwise select no one, silently). Membership is materialised and changed as a diff."""

from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from cdp.access import user_can
from cdp.ingest import system_events_record
from cdp.models import ChannelEventDaily, Customer, CustomerRole
from cdp.redaction import pii_kind
from cdp.services import audit_record
from cdp.sqlvalues import json_rows
from segments.compiler import evaluation_settings, rule_customer_ids_sql
from segments.graph import cycles_refuse, node_users, segment_node
from segments.models import LifecycleStage, MembershipChange, Segment, Tag
from segments.rules import (
    KEY_PATTERN,
    RuleError,
    rule_parse,
    rule_references,
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


def unknown_name(kind: str, name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(f'“{option}”' for option in close)}?" if close else ""
    return f"no {kind} is called “{name}”{hint}"


# Where each kind of name in a rule is looked up (event names that occurred, traits that recently
# active customers have, and the keys of tags, segments, roles and stages).
NAME_SOURCES = {
    "event": known_event_names,
    "trait": known_trait_keys,
    "tag": lambda: set(Tag.objects.values_list("key", flat=True)),
    "segment": lambda: set(Segment.objects.values_list("key", flat=True)),
    "role": lambda: set(CustomerRole.objects.values_list("key", flat=True)),
    "stage": lambda: set(LifecycleStage.objects.values_list("key", flat=True)),
}


# However it is written, a rule stays small enough to evaluate in bounded time.
MAX_RULE_LEAVES = 100
MAX_RULE_DEPTH = 8


def _is_group(node: dict) -> bool:
    return any(isinstance(node.get(group), list) for group in ("and", "or")) or "not" in node


def _walk(data, path: str = "$", depth: int = 1):
    """(path, node, depth) of every group and condition in a rule as written."""
    if not isinstance(data, dict):
        return
    yield path, data, depth
    for group in ("and", "or"):
        if isinstance(data.get(group), list):
            for index, child in enumerate(data[group]):
                yield from _walk(child, f"{path}.{group}[{index}]", depth + 1)
            return
    if "not" in data:
        yield from _walk(data["not"], f"{path}.not", depth + 1)


def _named_leaves(data):
    """(path, kind, name) of every name in a rule as written, well formed or not, so that a
    misspelt name is reported together with the rule's other mistakes."""
    for path, node, _depth in _walk(data):
        if _is_group(node):
            continue
        for kind in NAME_SOURCES:
            if isinstance(node.get(kind), str) and node[kind].strip():
                name = node[kind].strip().lower() if kind == "role" else node[kind]
                yield f"{path}.{kind}", kind, name


def _size_problems(data) -> list[dict]:
    nodes = list(_walk(data))
    leaves = [node for _path, node, _depth in nodes if not _is_group(node)]
    problems = []
    if len(leaves) > MAX_RULE_LEAVES:
        problems.append(
            {
                "path": "$",
                "message": _("The rule has %(count)s conditions; at most %(limit)s are allowed.")
                % {"count": len(leaves), "limit": MAX_RULE_LEAVES},
            }
        )
    deepest = max((depth for _path, _node, depth in nodes), default=0)
    if deepest > MAX_RULE_DEPTH:
        problems.append(
            {
                "path": "$",
                "message": _("The rule's groups are nested %(depth)s deep; at most %(limit)s are allowed.")
                % {"depth": deepest, "limit": MAX_RULE_DEPTH},
            }
        )
    return problems


def _personal_data_problems(data) -> list[dict]:
    """Conditions on phones, emails or ID numbers: they would tell someone who may not see them
    what they are, one count at a time."""
    problems = []
    for path, node, _depth in _walk(data):
        if isinstance(node.get("trait"), str) and pii_kind(node["trait"]):
            problems.append(
                {"path": f"{path}.trait", "message": PERSONAL_DATA_REFUSED % {"name": node["trait"]}}
            )
        for index, where in enumerate(node.get("where") or []):
            if (
                isinstance(where, dict)
                and isinstance(where.get("property"), str)
                and pii_kind(where["property"])
            ):
                problems.append(
                    {
                        "path": f"{path}.where[{index}].property",
                        "message": PERSONAL_DATA_REFUSED % {"name": where["property"]},
                    }
                )
    return problems


PERSONAL_DATA_REFUSED = gettext_lazy(
    "“%(name)s” holds personal data: only people who may see personal data can test it in a rule."
)


def rule_validate(data, *, personal_data: bool = True):
    """The parsed rule when it is well formed, small enough and every name in it exists; else
    RuleError with every problem and its JSON path. ``personal_data=False`` (someone without
    ``view_pii``) also refuses conditions on phones, emails and ID numbers."""
    try:
        rule, problems = rule_parse(data), []
    except RuleError as error:
        rule, problems = None, list(error.problems)
    problems += _size_problems(data)
    if not personal_data:
        problems += _personal_data_problems(data)
    known: dict[str, set[str]] = {}
    for path, kind, name in _named_leaves(data):
        if kind not in known:
            known[kind] = NAME_SOURCES[kind]()
        if name not in known[kind]:
            problems.append({"path": path, "message": unknown_name(kind, name, known[kind])})
    if problems:
        raise RuleError(problems)
    return rule


# --------------------------------------------------------------------------------------------------
# Segments: preview while editing, save, and materialised membership kept as a diff.

PREVIEW_SAMPLE = 10


@dataclass(frozen=True)
class Preview:
    count: int
    sample: list[Customer]


# A preview answers while the marketer types: a rule that takes longer is refused, not waited for.
PREVIEW_TIMEOUT_MS = 10_000


def segment_preview(*, rule_data, personal_data: bool = True) -> Preview:
    """How many customers a rule selects now (exactly), and a few of them (the most recently active).
    ``personal_data=False`` refuses conditions on phones, emails and ID numbers."""
    rule = rule_validate(rule_data, personal_data=personal_data)
    selected, params = rule_customer_ids_sql(rule, today=timezone.localdate(), columns="c.id, c.last_seen_at")
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            evaluation_settings()
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(PREVIEW_TIMEOUT_MS)])
            # The rule evaluated once for both the count and the sample; the sample is sorted from the
            # matched rows themselves (which carry their last-seen time), not looked up again among a
            # million customers. Fixed text around the compiled rule, whose values are all parameters.
            cursor.execute(
                f"""
            WITH matched AS MATERIALIZED ({selected})
            SELECT (SELECT count(*) FROM matched),
                   ARRAY(SELECT id FROM matched ORDER BY last_seen_at DESC NULLS LAST, id DESC LIMIT %s)
            """,  # noqa: S608
                [*params, PREVIEW_SAMPLE],
            )
            count, sample_ids = cursor.fetchone()
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) != "57014":  # query_canceled: the timeout
            raise
        raise RuleError(
            [
                {
                    "path": "$",
                    "message": _(
                        "The rule took over %(seconds)s seconds to count; narrow it (fewer conditions, "
                        "shorter time windows) and try again."
                    )
                    % {"seconds": PREVIEW_TIMEOUT_MS // 1000},
                }
            ]
        ) from None
    sample = Customer.objects.in_bulk(sample_ids)
    return Preview(count, [sample[customer_id] for customer_id in sample_ids])


@transaction.atomic
def segment_save(*, key: str, name: str, rule_data, actor, description: str = "") -> Segment:
    """Creates or changes a dynamic segment and brings its membership up to date at once."""
    key, name = key.strip(), name.strip()
    errors = {}
    if not KEY_PATTERN.match(key):
        errors["key"] = [_("Use lower-case letters, digits, - and _ (up to 100), e.g. lapsed-buyers.")]
    if not name:
        errors["name"] = [_("Give the segment a name.")]
    if errors:
        raise ValidationError(errors)
    # Someone who may not see phones may not find them out from a segment's size either.
    rule = rule_validate(rule_data, personal_data=actor is None or user_can(actor, "view_pii"))
    cycles_refuse(segment_node(key), rule_references(rule))
    segment, created = Segment.objects.select_for_update().get_or_create(
        key=key, defaults={"name": name, "description": description, "rule": rule_data, "created_by": actor}
    )
    if not created:
        segment.name, segment.description, segment.rule = name, description, rule_data
        segment.save(update_fields=["name", "description", "rule", "updated_at"])
    audit_record(
        actor=actor,
        action="segment.create" if created else "segment.change",
        target=segment,
        details={"rule": rule_data},
    )
    segment_refresh(segment=segment)
    segment.refresh_from_db()
    transaction.on_commit(lambda: queue_dependents(segment_node(key)), robust=True)
    return segment


def segment_users(segment: Segment) -> list[str]:
    """The rules that read this segment (it cannot be deleted while they do)."""
    return node_users(segment_node(segment.key))


@transaction.atomic
def segment_delete(*, segment: Segment, actor) -> int:
    """Deletes a segment no other rule reads; returns how many members it had. Its members get no
    ``segment_exited`` event: the segment is gone, not left."""
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    users = segment_users(segment)
    if users:
        raise ValidationError(
            {
                "segment": [
                    _("“%(segment)s” is used by %(users)s; change those first.")
                    % {"segment": segment.name, "users": ", ".join(users)}
                ]
            }
        )
    members = segment.member_count
    audit_record(
        actor=actor, action="segment.delete", target=segment, details={"key": segment.key, "members": members}
    )
    segment.delete()
    return members


def queue_dependents(node: str) -> None:
    from segments.tasks import refresh_dependents

    refresh_dependents.delay(node)


@dataclass(frozen=True)
class MembershipDiff:
    entered: int
    exited: int


@transaction.atomic
def segment_refresh(*, segment: Segment, today: dt.date | None = None) -> MembershipDiff:
    """Applies the rule as a diff, in one transaction: customers who now match enter, those who no
    longer do exit. Each gets a ``segment_entered`` / ``segment_exited`` event on their timeline
    right after (``membership_events_write``, queued when this commits)."""
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    rule = rule_parse(segment.rule)
    selected, params = rule_customer_ids_sql(rule, today=today or timezone.localdate())
    now = timezone.now()
    evaluation_settings()
    with connection.cursor() as cursor:
        # One statement: the rule evaluated, compared with the members (one hash join both ways),
        # the members changed and the change recorded with who entered and who left, in id order
        # (which is also the order the indexes take them in most cheaply).
        cursor.execute(
            f"""
            WITH matched AS MATERIALIZED ({selected}),
            change AS MATERIALIZED (
                SELECT coalesce(matched.id, member.customer_id) AS customer_id,
                       matched.id IS NOT NULL AS entered
                FROM matched
                FULL JOIN (SELECT customer_id FROM segments_segmentmember WHERE segment_id = %s) AS member
                       ON member.customer_id = matched.id
                WHERE matched.id IS NULL OR member.customer_id IS NULL
            ),
            exited AS (
                DELETE FROM segments_segmentmember AS m USING change
                WHERE m.segment_id = %s AND m.customer_id = change.customer_id AND NOT change.entered
            ),
            entered AS (
                INSERT INTO segments_segmentmember (segment_id, customer_id, entered_at)
                SELECT %s, customer_id, %s FROM change WHERE entered ORDER BY customer_id
            ),
            recorded AS (
                INSERT INTO segments_membershipchange (segment_id, changed_at, entered, exited,
                                                       member_count, events_written, events_done)
                SELECT %s, %s,
                       ARRAY(SELECT customer_id FROM change WHERE entered ORDER BY 1),
                       ARRAY(SELECT customer_id FROM change WHERE NOT entered ORDER BY 1),
                       (SELECT count(*) FROM matched), 0, false
                WHERE EXISTS (SELECT 1 FROM change)
                RETURNING id
            )
            SELECT (SELECT count(*) FROM change WHERE entered),
                   (SELECT count(*) FROM change WHERE NOT entered),
                   (SELECT count(*) FROM matched), (SELECT id FROM recorded)
            """,  # noqa: S608 (the compiled rule; values are parameters)
            [*params, segment.pk, segment.pk, segment.pk, now, segment.pk, now],
        )
        entered, exited, segment.member_count, change_id = cursor.fetchone()
    if change_id is not None:
        transaction.on_commit(lambda: _queue_events(change_id), robust=True)
    segment.refreshed_at = now
    segment.save(update_fields=["member_count", "refreshed_at"])
    return MembershipDiff(entered, exited)


def _queue_events(change_id: int) -> None:
    from segments.tasks import membership_events

    membership_events.delay(change_id)


EVENTS_CHUNK = 50_000


def membership_events_write(*, change_id: int, chunk: int = EVENTS_CHUNK) -> int:
    """Writes a membership change's ``segment_entered`` / ``segment_exited`` events and their
    rollups, one chunk per transaction; each chunk records how far it got in the same transaction,
    so a worker that dies resumes where the last commit left off and nothing is written twice.
    Returns the events written by this call."""
    written = 0
    while True:
        with transaction.atomic():
            change = MembershipChange.objects.select_for_update().select_related("segment").get(pk=change_id)
            rows = [(customer_id, "segment_entered") for customer_id in change.entered] + [
                (customer_id, "segment_exited") for customer_id in change.exited
            ]
            part = rows[change.events_written : change.events_written + chunk]
            if not part:
                if not change.events_done:
                    change.events_done = True
                    change.save(update_fields=["events_done"])
                return written
            _events_insert(change, part)
            change.events_written += len(part)
            change.events_done = change.events_written >= len(rows)
            change.save(update_fields=["events_written", "events_done"])
            written += len(part)


def membership_events_pending() -> int:
    """Finishes every change whose events are not all written (beat's sweep: a lost task)."""
    return sum(
        membership_events_write(change_id=change_id)
        for change_id in MembershipChange.objects.filter(events_done=False).values_list("pk", flat=True)
    )


def _events_insert(change: MembershipChange, rows: list[tuple[int, str]]) -> None:
    segment = change.segment
    system_events_record(
        rows=rows,
        kind="segment",
        properties={"segment": segment.key, "segment_name": segment.name},
        moment=change.changed_at,
        message_prefix=f"segment-change-{change.pk}",
        rules_follow=False,
    )


# A refresh's changes up to this many customers in all write their timeline events in the same
# transaction, rather than in a task of their own per segment: after new events a refresh moves a
# few customers, and two more tasks per event would take the worker from the refreshes themselves.
EVENTS_INLINE = 1_000


def membership_apply(looked_at: list[tuple[Segment, set[int], set[int]]]) -> list[MembershipDiff]:
    """Among the customers looked at, for each (segment, who matches now, who is in it now): who
    now matches enters, who no longer does exits. Every segment's change in the same few statements
    (members deleted, inserted, sizes, the recorded changes), whatever the number of segments; their
    ``segment_entered`` / ``segment_exited`` events with them when there are few (``EVENTS_INLINE``),
    else from a task each after the commit, as for a full refresh."""
    diffs, exits, entries, sizes, changes = [], [], [], [], []
    now = timezone.now()
    for segment, matched, current in looked_at:
        entered, exited = sorted(matched - current), sorted(current - matched)
        diffs.append(MembershipDiff(len(entered), len(exited)))
        if entered or exited:
            exits += [(segment.pk, customer_id) for customer_id in exited]
            entries += [(segment.pk, customer_id) for customer_id in entered]
            sizes.append((segment.pk, len(entered) - len(exited)))
            changes.append(MembershipChange(segment=segment, changed_at=now, entered=entered, exited=exited))
    if not changes:
        return diffs
    with connection.cursor() as cursor:
        if exits:
            cursor.execute(
                "DELETE FROM segments_segmentmember AS m"
                " USING json_to_recordset(%s::json) AS x(segment_id bigint, customer_id bigint)"
                " WHERE m.segment_id = x.segment_id AND m.customer_id = x.customer_id",
                [json_rows("segment_id customer_id", exits)],
            )
        if entries:
            cursor.execute(
                "INSERT INTO segments_segmentmember (segment_id, customer_id, entered_at)"
                " SELECT x.segment_id, x.customer_id, %s"
                " FROM json_to_recordset(%s::json) AS x(segment_id bigint, customer_id bigint)",
                [now, json_rows("segment_id customer_id", entries)],
            )
        cursor.execute(
            "UPDATE segments_segment AS g SET member_count = g.member_count + x.change, refreshed_at = %s"
            " FROM json_to_recordset(%s::json) AS x(id bigint, change integer) WHERE g.id = x.id"
            " RETURNING g.id, g.member_count",
            [now, json_rows("id change", sizes)],
        )
        member_counts = dict(cursor.fetchall())
    inline = len(exits) + len(entries) <= EVENTS_INLINE
    for change in changes:
        change.member_count = member_counts[change.segment_id]
        if inline:
            change.events_written, change.events_done = len(change.entered) + len(change.exited), True
    MembershipChange.objects.bulk_create(changes)
    for change in changes:
        if inline:
            rows = [(customer_id, "segment_entered") for customer_id in change.entered]
            _events_insert(change, rows + [(customer_id, "segment_exited") for customer_id in change.exited])
        else:
            transaction.on_commit(lambda change_id=change.pk: _queue_events(change_id), robust=True)
    return diffs
