"""Merging two customers into one, under the identity rules, so that nothing is lost or counted twice."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from cdp.identity import identity_type_of
from cdp.models import Consent, Customer, Event, Identity, MergeLog, MergeReview, Note
from cdp.services import audit_record, consent_record
from cdp.signals import customers_merged, customers_unmerged


class MergeConflict(Exception):
    """The merge would give one customer more values of a type than its rule allows."""


class MergeRetry(Exception):
    """One of the customers was merged elsewhere meanwhile; resolve again from the identities."""


def _rule_violations(survivor_id: int, merged_id: int) -> list[str]:
    values: dict[str, set[str]] = defaultdict(set)
    rows = Identity.objects.filter(customer_id__in=[survivor_id, merged_id]).values_list("type", "value")
    for identity_type, value in rows:
        if identity_type_of(identity_type).max_per_customer is not None:
            values[identity_type].add(value)
    return [
        identity_type
        for identity_type, found in values.items()
        if len(found) > identity_type_of(identity_type).max_per_customer
    ]


def _merge_traits(survivor: Customer, merged: Customer) -> None:
    for key, value in merged.traits.items():
        stamp = merged.traits_updated_at.get(key, "")
        if key not in survivor.traits or survivor.traits_updated_at.get(key, "") < stamp:
            survivor.traits[key] = value
            survivor.traits_updated_at[key] = stamp
    survivor.name = survivor.name or merged.name
    firsts = [moment for moment in (survivor.first_seen_at, merged.first_seen_at) if moment]
    lasts = [moment for moment in (survivor.last_seen_at, merged.last_seen_at) if moment]
    survivor.first_seen_at = min(firsts) if firsts else None
    survivor.last_seen_at = max(lasts) if lasts else None
    survivor.owner_id = survivor.owner_id or merged.owner_id


def _merge_consents(survivor_id: int, merged_id: int) -> None:
    """Per channel the newest decision wins: an unsubscribe on either profile is never lost."""
    for consent in Consent.objects.filter(customer_id=merged_id):
        consent_record(
            customer_id=survivor_id,
            channel=consent.channel,
            status=consent.status,
            changed_at=consent.changed_at,
            origin=consent.origin,
        )
    Consent.objects.filter(customer_id=merged_id).delete()


def _merge_rollups(survivor_id: int, merged_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO cdp_customereventstats (customer_id, name, first_at, last_at, count, amount_sum)
            SELECT %s, name, first_at, last_at, count, amount_sum FROM cdp_customereventstats
            WHERE customer_id = %s
            ON CONFLICT (customer_id, name) DO UPDATE SET
                first_at = LEAST(cdp_customereventstats.first_at, EXCLUDED.first_at),
                last_at = GREATEST(cdp_customereventstats.last_at, EXCLUDED.last_at),
                count = cdp_customereventstats.count + EXCLUDED.count,
                amount_sum = cdp_customereventstats.amount_sum + EXCLUDED.amount_sum
            """,
            [survivor_id, merged_id],
        )
        cursor.execute("DELETE FROM cdp_customereventstats WHERE customer_id = %s", [merged_id])
        cursor.execute(
            """
            INSERT INTO cdp_customereventdaily (customer_id, name, day, count)
            SELECT %s, name, day, count FROM cdp_customereventdaily WHERE customer_id = %s
            ON CONFLICT (customer_id, name, day) DO UPDATE
            SET count = cdp_customereventdaily.count + EXCLUDED.count
            """,
            [survivor_id, merged_id],
        )
        cursor.execute("DELETE FROM cdp_customereventdaily WHERE customer_id = %s", [merged_id])


@transaction.atomic
def customers_merge(
    *, survivor_id: int, merged_id: int, reason: str, actor=None, override_rules: bool = False
) -> MergeLog:
    """Moves everything of ``merged`` to ``survivor``; ``merged`` then points to ``survivor``.

    Both rows are locked in id order, so concurrent merges (A into B, B into C) serialise instead of
    deadlocking, and the later one sees that its customer is already gone (MergeRetry).
    """
    locked = {
        customer.pk: customer
        for customer in Customer.objects.select_for_update()
        .filter(pk__in=[survivor_id, merged_id])
        .order_by("pk")
    }
    if len(locked) != 2 or any(customer.merged_into_id for customer in locked.values()):
        raise MergeRetry(f"customer {survivor_id} or {merged_id} was merged meanwhile")
    violations = _rule_violations(survivor_id, merged_id)
    if violations and not override_rules:
        raise MergeConflict(f"both customers hold a different {', '.join(violations)}")
    survivor, merged = locked[survivor_id], locked[merged_id]
    identity_ids = list(Identity.objects.filter(customer_id=merged_id).values_list("pk", flat=True))
    note_ids = list(Note.objects.filter(customer_id=merged_id).values_list("pk", flat=True))
    consents = [
        {**consent, "changed_at": consent["changed_at"].isoformat()}
        for consent in Consent.objects.filter(customer_id=merged_id).values(
            "channel", "status", "changed_at", "origin"
        )
    ]
    Identity.objects.filter(customer_id=merged_id).update(customer_id=survivor_id)
    Event.objects.filter(customer_id=merged_id).update(customer_id=survivor_id)
    Note.objects.filter(pk__in=note_ids).update(customer_id=survivor_id)
    _merge_consents(survivor_id, merged_id)
    _merge_rollups(survivor_id, merged_id)
    _merge_traits(survivor, merged)
    survivor.save()
    merged.merged_into_id = survivor_id
    merged.save(update_fields=["merged_into", "updated_at"])
    customers_merged.send(sender=Customer, survivor_id=survivor_id, merged_id=merged_id)
    return MergeLog.objects.create(
        survivor_id=survivor_id,
        merged_id=merged_id,
        identity_ids=identity_ids,
        note_ids=note_ids,
        consents=consents,
        reason=reason,
        actor=actor,
    )


def review_open(*, first_id: int, second_id: int, reason: str) -> MergeReview:
    """Queues two customers that share an identifier but may not merge under the rules."""
    first_id, second_id = sorted((first_id, second_id))
    review, _created = MergeReview.objects.get_or_create(
        first_id=first_id,
        second_id=second_id,
        status=MergeReview.Status.OPEN,
        defaults={"reason": reason[:300]},
    )
    return review


@transaction.atomic
def review_resolve(*, review: MergeReview, merge: bool, actor) -> MergeReview:
    """Staff decide: merge the two (keeping every identifier) or keep them apart for good."""
    if review.status != MergeReview.Status.OPEN:
        return review
    if merge:
        first = customer_survivor(review.first_id)
        second = customer_survivor(review.second_id)
        if first != second:
            survivor, merged = sorted((first, second))
            customers_merge(
                survivor_id=survivor, merged_id=merged, reason="review", actor=actor, override_rules=True
            )
    review.status = MergeReview.Status.MERGED if merge else MergeReview.Status.KEPT_APART
    audit_record(
        actor=actor,
        action="customer.review",
        target=review.first,
        details={"other": review.second_id, "merged": merge},
    )
    review.resolved_by = actor
    review.resolved_at = timezone.now()
    review.save(update_fields=["status", "resolved_by", "resolved_at"])
    return review


def customer_survivor(customer_id: int) -> int:
    seen = 0
    while seen < 50:
        merged_into = Customer.objects.filter(pk=customer_id).values_list("merged_into_id", flat=True).first()
        if not merged_into:
            return customer_id
        customer_id, seen = merged_into, seen + 1
    return customer_id


def _absorbed_ids(customer_id: int) -> list[int]:
    """The customer and every customer merged into it, directly or through others."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH RECURSIVE absorbed(id) AS (
                SELECT %s::bigint
                UNION
                SELECT customer.id FROM cdp_customer customer
                JOIN absorbed ON customer.merged_into_id = absorbed.id
            )
            SELECT id FROM absorbed
            """,
            [customer_id],
        )
        return [row[0] for row in cursor.fetchall()]


def rollups_rebuild(*, customer_ids: list[int]) -> None:
    """Recounts the per-customer rollups from the events themselves (after an unmerge)."""
    local = zoneinfo.ZoneInfo(settings.TIME_ZONE).key
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM cdp_customereventstats WHERE customer_id = ANY(%s)", [customer_ids])
        cursor.execute("DELETE FROM cdp_customereventdaily WHERE customer_id = ANY(%s)", [customer_ids])
        cursor.execute(
            """
            INSERT INTO cdp_customereventstats (customer_id, name, first_at, last_at, count, amount_sum)
            SELECT customer_id, name, min(timestamp), max(timestamp), count(*), coalesce(sum(amount), 0)
            FROM cdp_event WHERE customer_id = ANY(%s) GROUP BY customer_id, name
            """,
            [customer_ids],
        )
        cursor.execute(
            """
            INSERT INTO cdp_customereventdaily (customer_id, name, day, count)
            SELECT customer_id, name, (timestamp AT TIME ZONE %s)::date, count(*)
            FROM cdp_event WHERE customer_id = ANY(%s) GROUP BY 1, 2, 3
            """,
            [local, customer_ids],
        )


@transaction.atomic
def customers_unmerge(*, log: MergeLog, actor) -> Customer:
    """Undoes a merge: the identifiers and events that came with the merged customer go back to it."""
    if log.undone_at is not None:
        raise MergeConflict("This merge was undone already.")
    customers = {
        customer.pk: customer
        for customer in Customer.objects.select_for_update()
        .filter(pk__in=[log.survivor_id, log.merged_id])
        .order_by("pk")
    }
    survivor, merged = customers[log.survivor_id], customers[log.merged_id]
    if merged.merged_into_id != survivor.pk or survivor.merged_into_id is not None:
        raise MergeConflict("The survivor was itself merged since; undo that merge first.")
    Identity.objects.filter(pk__in=log.identity_ids, customer=survivor).update(customer=merged)
    Note.objects.filter(pk__in=log.note_ids, customer=survivor).update(customer=merged)
    for consent in log.consents:  # its own decisions, as they stood when it was merged
        consent_record(
            customer_id=merged.pk,
            channel=consent["channel"],
            status=consent["status"],
            changed_at=dt.datetime.fromisoformat(consent["changed_at"]),
            origin=consent["origin"],
        )
    Event.objects.filter(customer=survivor, origin_customer_id__in=_absorbed_ids(merged.pk)).update(
        customer=merged
    )
    merged.merged_into = None
    merged.save(update_fields=["merged_into", "updated_at"])
    rollups_rebuild(customer_ids=[survivor.pk, merged.pk])
    customers_unmerged.send(sender=Customer, survivor_id=survivor.pk, merged_id=merged.pk)
    log.undone_at = timezone.now()
    log.save(update_fields=["undone_at"])
    audit_record(actor=actor, action="customer.unmerge", target=survivor, details={"restored": merged.pk})
    MergeReview.objects.filter(
        first_id__in=[survivor.pk, merged.pk], second_id__in=[survivor.pk, merged.pk]
    ).update(status=MergeReview.Status.KEPT_APART, resolved_by=actor, resolved_at=timezone.now())
    return merged


def customers_merge_by_hand(*, customer: Customer, other: Customer, actor) -> MergeLog:
    """Staff merge two profiles they know are one person; the older profile survives."""
    survivor_id, merged_id = sorted((customer_survivor(customer.pk), customer_survivor(other.pk)))
    if survivor_id == merged_id:
        raise MergeConflict("These are already the same customer.")
    log = customers_merge(survivor_id=survivor_id, merged_id=merged_id, reason="manual", actor=actor)
    audit_record(actor=actor, action="customer.merge", target=log.survivor, details={"merged": merged_id})
    return log
