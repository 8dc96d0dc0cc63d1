"""Segments and the rules behind them. Rules are checked against the data: a rule that names an
event, trait, tag, segment, role or stage nobody has is refused with the closest names that do exist (a typo
would otherwise select no one, silently). Membership is materialised and changed as a diff."""

from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from cdp.ingest import system_events_record
from cdp.models import ChannelEventDaily, Customer, CustomerRole
from cdp.services import audit_record
from cdp.sqlvalues import id_array
from segments.compiler import evaluation_memory, rule_customer_ids_sql
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


def _named_leaves(data, path: str = "$"):
    """(path, kind, name) of every name in a rule as written, well formed or not, so that a
    misspelt name is reported together with the rule's other mistakes."""
    if not isinstance(data, dict):
        return
    for group in ("and", "or"):
        if isinstance(data.get(group), list):
            for index, child in enumerate(data[group]):
                yield from _named_leaves(child, f"{path}.{group}[{index}]")
            return
    if "not" in data:
        yield from _named_leaves(data["not"], f"{path}.not")
        return
    for kind in NAME_SOURCES:
        if isinstance(data.get(kind), str) and data[kind].strip():
            name = data[kind].strip().lower() if kind == "role" else data[kind]
            yield f"{path}.{kind}", kind, name


def rule_validate(data):
    """The parsed rule when it is well formed and every name in it exists; else RuleError with
    every problem and its JSON path."""
    try:
        rule, problems = rule_parse(data), []
    except RuleError as error:
        rule, problems = None, list(error.problems)
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


def segment_preview(*, rule_data) -> Preview:
    """How many customers a rule selects now, and a few of them (the most recently active)."""
    rule = rule_validate(rule_data)
    selected, params = rule_customer_ids_sql(rule, today=timezone.localdate())
    with transaction.atomic(), connection.cursor() as cursor:
        evaluation_memory()
        # The rule evaluated once for both the count and the sample. Fixed text around the compiled
        # rule, whose values are all parameters.
        cursor.execute(
            f"""
            WITH matched AS MATERIALIZED ({selected})
            SELECT (SELECT count(*) FROM matched),
                   ARRAY(SELECT c.id FROM cdp_customer AS c JOIN matched ON matched.id = c.id
                         ORDER BY c.last_seen_at DESC NULLS LAST, c.id DESC LIMIT %s)
            """,  # noqa: S608
            [*params, PREVIEW_SAMPLE],
        )
        count, sample_ids = cursor.fetchone()
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
    rule = rule_validate(rule_data)
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
    evaluation_memory()
    with connection.cursor() as cursor:
        # Dropped at commit; dropped here too, for a second refresh in the same transaction.
        cursor.execute("DROP TABLE IF EXISTS segment_now, segment_change")
        cursor.execute("CREATE TEMP TABLE segment_now (id bigint PRIMARY KEY) ON COMMIT DROP")
        cursor.execute(f"INSERT INTO segment_now {selected}", params)
        cursor.execute(
            """
            CREATE TEMP TABLE segment_change ON COMMIT DROP AS
            SELECT now.id AS customer_id, 'segment_entered'::text AS name
            FROM segment_now AS now
            WHERE NOT EXISTS (SELECT 1 FROM segments_segmentmember AS m
                              WHERE m.segment_id = %s AND m.customer_id = now.id)
            UNION ALL
            SELECT m.customer_id, 'segment_exited'
            FROM segments_segmentmember AS m
            WHERE m.segment_id = %s
              AND NOT EXISTS (SELECT 1 FROM segment_now AS now WHERE now.id = m.customer_id)
            """,
            [segment.pk, segment.pk],
        )
        cursor.execute(
            """
            DELETE FROM segments_segmentmember AS m USING segment_change AS change
            WHERE m.segment_id = %s AND m.customer_id = change.customer_id AND change.name = 'segment_exited'
            """,
            [segment.pk],
        )
        cursor.execute(
            """
            INSERT INTO segments_segmentmember (segment_id, customer_id, entered_at)
            SELECT %s, customer_id, %s FROM segment_change WHERE name = 'segment_entered'
            """,
            [segment.pk, now],
        )
        cursor.execute(
            "SELECT count(*) FILTER (WHERE name = 'segment_entered'),"
            " count(*) FILTER (WHERE name = 'segment_exited') FROM segment_change"
        )
        entered, exited = cursor.fetchone()
        if entered or exited:
            cursor.execute(
                """
                INSERT INTO segments_membershipchange (segment_id, changed_at, entered, exited,
                                                       member_count, events_written, events_done)
                SELECT %s, %s,
                       ARRAY(SELECT customer_id FROM segment_change WHERE name = 'segment_entered'
                             ORDER BY 1),
                       ARRAY(SELECT customer_id FROM segment_change WHERE name = 'segment_exited'
                             ORDER BY 1),
                       (SELECT count(*) FROM segment_now), 0, false
                RETURNING id
                """,
                [segment.pk, now],
            )
            change_id = cursor.fetchone()[0]
            transaction.on_commit(lambda: _queue_events(change_id), robust=True)
        cursor.execute("SELECT count(*) FROM segment_now")
        segment.member_count = cursor.fetchone()[0]
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


def membership_apply(segment: Segment, matched: set[int], current: set[int]) -> MembershipDiff:
    """Among the customers looked at: who now matches enters, who no longer does exits."""
    entered, exited = sorted(matched - current), sorted(current - matched)
    if not entered and not exited:
        return MembershipDiff(0, 0)
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM segments_segmentmember WHERE segment_id = %s AND customer_id = ANY(%s::bigint[])",
            [segment.pk, id_array(exited)],
        )
        cursor.execute(
            "INSERT INTO segments_segmentmember (segment_id, customer_id, entered_at)"
            " SELECT %s, unnest(%s::bigint[]), %s",
            [segment.pk, id_array(entered), now],
        )
    Segment.objects.filter(pk=segment.pk).update(
        member_count=F("member_count") + len(entered) - len(exited), refreshed_at=now
    )
    member_count = Segment.objects.filter(pk=segment.pk).values_list("member_count", flat=True).get()
    change = MembershipChange.objects.create(
        segment=segment, changed_at=now, entered=entered, exited=exited, member_count=member_count
    )
    transaction.on_commit(lambda: _queue_events(change.pk), robust=True)
    return MembershipDiff(len(entered), len(exited))
