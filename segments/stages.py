"""Lifecycle stages: an ordered path ("prospect" → "nurturing" → "customer" → "loyal"), each stage
defined by a rule. Every customer is in the furthest stage whose rule they match (or in none);
every move is a ``stage_changed`` event saying from where to where, so journeys can start on it and
reports can count it."""

from __future__ import annotations

import datetime as dt
import re

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from cdp.ingest import system_events_record
from cdp.services import audit_record
from cdp.sqlvalues import id_array
from segments.compiler import evaluation_memory, rule_compile
from segments.graph import STAGE, cycles_refuse, node_users, stage_node
from segments.models import CustomerStage, LifecycleStage, ManualStage
from segments.rules import KEY_PATTERN, rule_parse, rule_references
from segments.services import MembershipDiff, queue_dependents, rule_validate

COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


@transaction.atomic
def stage_save(
    *, key: str, name: str, rule_data, actor, color: str = "#2563eb", stage: LifecycleStage | None = None
) -> LifecycleStage:
    """Adds a stage at the end of the path (or changes one); every customer's stage is worked out
    again at once."""
    key, name, color = key.strip(), name.strip(), color.strip() or "#2563eb"
    errors = {}
    if stage is None:
        if not KEY_PATTERN.match(key):
            errors["key"] = [_("Use lower-case letters, digits, - and _ (up to 100), e.g. nurturing.")]
        elif LifecycleStage.objects.filter(key=key).exists():
            errors["key"] = [_("A stage with this key exists already.")]
    if not name:
        errors["name"] = [_("Give the stage a name.")]
    if not COLOR.match(color):
        errors["color"] = [_("Pick a colour such as #2563eb.")]
    if errors:
        raise ValidationError(errors)
    # The stage node reads what every stage's rule reads: this one's, as it will be, and the others'.
    references = rule_references(rule_validate(rule_data))
    for other in LifecycleStage.objects.exclude(pk=stage.pk if stage else None):
        references |= rule_references(rule_parse(other.rule))
    cycles_refuse(STAGE, references)
    if stage is None:
        position = (LifecycleStage.objects.aggregate(last=Max("position"))["last"] or 0) + 1
        stage = LifecycleStage.objects.create(
            key=key, name=name, color=color, rule=rule_data, position=position
        )
        action = "stage.create"
    else:
        stage.name, stage.color, stage.rule = name, color, rule_data
        stage.save()
        action = "stage.change"
    audit_record(actor=actor, action=action, target=stage, details={"rule": rule_data})
    stages_refresh()
    transaction.on_commit(lambda: queue_dependents(STAGE), robust=True)
    return stage


@transaction.atomic
def stages_reorder(*, keys: list[str], actor) -> None:
    """The path in a new order (every stage's key, first to last); customers move at once."""
    stages = {stage.key: stage for stage in LifecycleStage.objects.select_for_update()}
    if sorted(keys) != sorted(stages):
        raise ValidationError({"order": [_("List every stage once.")]})
    if not keys:  # no stages, nothing to order
        return
    for position, key in enumerate(keys, start=1):
        LifecycleStage.objects.filter(pk=stages[key].pk).update(position=position)
    audit_record(actor=actor, action="stage.reorder", target=stages[keys[0]], details={"order": keys})
    stages_refresh()
    transaction.on_commit(lambda: queue_dependents(STAGE), robust=True)


def stage_users(stage: LifecycleStage) -> list[str]:
    """The rules that test for this stage by name."""
    return node_users(stage_node(stage.key))


@transaction.atomic
def stage_delete(*, stage: LifecycleStage, actor) -> int:
    """Removes a stage no rule tests for; its customers move to the stage they now match (or none).
    Returns how many customers were in it."""
    users = stage_users(stage)
    if users:
        raise ValidationError(
            {
                "stage": [
                    _("“%(stage)s” is used by %(users)s; change those first.")
                    % {"stage": stage.name, "users": ", ".join(users)}
                ]
            }
        )
    holders = CustomerStage.objects.filter(stage=stage).count()
    audit_record(
        actor=actor, action="stage.delete", target=stage, details={"key": stage.key, "holders": holders}
    )
    # Their stage_changed events say where they went (from: this stage), so the moves are worked
    # out before the stage row goes.
    stages_refresh(without=stage)
    stage.delete()
    transaction.on_commit(lambda: queue_dependents(STAGE), robust=True)
    return holders


def stage_board(*, visible: Q, cards: int = 12) -> list[dict]:
    """The kanban: every stage in order with its count and its most recently moved customers among
    those the reader sees (``visible``: a filter through ``customer``)."""
    stages = list(LifecycleStage.objects.annotate(holder_count=Count("holders")).order_by("position", "pk"))
    columns = []
    for stage in stages:
        recent = (
            CustomerStage.objects.filter(visible, stage=stage)
            .select_related("customer")
            .order_by("-entered_at")[:cards]
        )
        columns.append({"stage": stage, "count": stage.holder_count, "cards": list(recent)})
    return columns


# --------------------------------------------------------------------------------------------------
# Lifecycle stages.


def stages_apply(
    stages: list[LifecycleStage], chosen: dict[int, int | None], current: dict[int, int]
) -> MembershipDiff:
    """Moves each customer whose stage changed; every move is a ``stage_changed`` event saying from
    where to where. ``entered``: customers now in a stage they were not in; ``exited``: customers
    now in none."""
    chosen = _manual_stages_kept(stages, chosen)
    moves = {
        customer_id: (current.get(customer_id), stage_id)
        for customer_id, stage_id in chosen.items()
        if current.get(customer_id) != stage_id
    }
    if not moves:
        return MembershipDiff(0, 0)
    now = timezone.now()
    placed = [(customer_id, to) for customer_id, (_from, to) in moves.items() if to is not None]
    left = [customer_id for customer_id, (_from, to) in moves.items() if to is None]
    with connection.cursor() as cursor:
        if left:
            cursor.execute(
                "DELETE FROM segments_customerstage WHERE customer_id = ANY(%s::bigint[])", [id_array(left)]
            )
        if placed:
            cursor.execute(
                """
                INSERT INTO segments_customerstage (customer_id, stage_id, entered_at)
                SELECT unnest(%s::bigint[]), unnest(%s::bigint[]), %s
                ON CONFLICT (customer_id) DO UPDATE SET stage_id = EXCLUDED.stage_id,
                                                        entered_at = EXCLUDED.entered_at
                """,
                [id_array([c for c, _s in placed]), id_array([s for _c, s in placed]), now],
            )
    keys = {stage.pk: stage for stage in stages}
    by_move: dict[tuple, list[int]] = {}
    for customer_id, move in moves.items():
        by_move.setdefault(move, []).append(customer_id)
    for (from_id, to_id), customer_ids in sorted(by_move.items(), key=lambda item: str(item[0])):
        source, target = keys.get(from_id), keys.get(to_id)
        system_events_record(
            rows=[(customer_id, "stage_changed") for customer_id in sorted(customer_ids)],
            kind="stage",
            properties={
                "from": source.key if source else None,
                "from_name": source.name if source else None,
                "to": target.key if target else None,
                "to_name": target.name if target else None,
            },
            moment=now,
            message_prefix=f"stage-{from_id}-{to_id}-{int(now.timestamp() * 1000)}",
            rules_follow=False,
        )
    return MembershipDiff(len(placed), len(left))


def _manual_stages_kept(stages: list[LifecycleStage], chosen: dict[int, int | None]) -> dict[int, int | None]:
    """A customer whose rules choose a stage before the one set for them by hand stays in that one."""
    position = {stage.pk: index for index, stage in enumerate(stages)}
    # A customer merged away meanwhile leaves its stage, set by hand or not.
    manual = ManualStage.objects.filter(stage_id__in=list(position), customer__merged_into__isnull=True)
    if len(chosen) <= 10_000:  # else every manual stage: there are far fewer than customers
        manual = manual.filter(customer_id__in=list(chosen))
    kept = dict(chosen)
    for customer_id, floor in manual.values_list("customer_id", "stage_id"):
        if customer_id in kept and (
            kept[customer_id] is None or position[kept[customer_id]] < position[floor]
        ):
            kept[customer_id] = floor
    return kept


@transaction.atomic
def customers_stage_set(*, customer_ids: list[int], stage: LifecycleStage, origin: str) -> MembershipDiff:
    """Sets these customers' stage by hand (a journey step, a person): they move there at once, and
    their rules may take them further but never back before it (see ``ManualStage``)."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO segments_manualstage (customer_id, stage_id, set_at, origin)
            SELECT unnest(%s::bigint[]), %s, %s, %s
            ON CONFLICT (customer_id) DO UPDATE
            SET stage_id = EXCLUDED.stage_id, set_at = EXCLUDED.set_at, origin = EXCLUDED.origin
            """,
            [id_array(customer_ids), stage.pk, now, origin[:200]],
        )
    diff = stages_refresh(customer_ids=customer_ids)
    # The segments, tags and journeys' audiences that read the stage follow now, not on these
    # customers' next event (a worker evaluates them once this commits).
    from segments.signals import refresh_later  # segments.refresh imports this module

    refresh_later(customer_ids)
    return diff


def stages_refresh(
    *,
    today: dt.date | None = None,
    without: LifecycleStage | None = None,
    customer_ids: list[int] | None = None,
) -> MembershipDiff:
    """Every customer's stage (or these customers') from the stage rules (but ``without``'s) and the
    stages set by hand, in one pass, applied as moves."""
    every = list(LifecycleStage.objects.select_for_update().order_by("position", "pk"))
    stages = [stage for stage in every if without is None or stage.pk != without.pk]
    if without is not None:
        ManualStage.objects.filter(stage=without).delete()
    today = today or timezone.localdate()
    holders = CustomerStage.objects.all()
    only, only_params = "", []
    if customer_ids is not None:
        holders = holders.filter(customer_id__in=customer_ids)
        only, only_params = " AND c.id = ANY(%s::bigint[])", [id_array(customer_ids)]
    current = dict(holders.values_list("customer_id", "stage_id"))
    chosen: dict[int, int | None] = dict.fromkeys(current)
    if customer_ids is not None:
        chosen.update({customer_id: chosen.get(customer_id) for customer_id in customer_ids})
    if stages:
        compiled = [rule_compile(rule_parse(stage.rule), today=today) for stage in stages]
        # The furthest stage first: CASE takes the first that holds.
        cases = " ".join(
            f"WHEN ({rule.where}) THEN {int(stage.pk)}"
            for stage, rule in reversed(list(zip(stages, compiled, strict=True)))
        )
        params = [param for rule in reversed(compiled) for param in rule.params]
        evaluation_memory()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, stage_id FROM (SELECT c.id, CASE {cases} END AS stage_id FROM cdp_customer AS c"  # noqa: S608
                f" WHERE c.merged_into_id IS NULL{only}) AS staged WHERE stage_id IS NOT NULL",
                [*params, *only_params],
            )
            chosen.update(cursor.fetchall())
    return stages_apply(every, chosen, current)
