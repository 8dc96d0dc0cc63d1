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
from cdp.sqlvalues import id_array, json_rows


class MergeConflict(Exception):
    """The merge would give one customer more values of a type than its rule allows."""


class MergeRetry(Exception):
    """One of the customers was merged elsewhere meanwhile; resolve again from the identities."""


def merge_pairs_json(pairs: list[tuple[int, int]]) -> str:
    """The pairs of a merge for ``json_to_recordset(%s::json) AS pair(merged bigint, survivor bigint)``:
    joined, it moves every merged customer's rows to its survivor."""
    return json_rows("survivor merged", pairs)


def _rule_violations(pairs: list[tuple[int, int]]) -> dict[int, list[str]]:
    """Per survivor, the identity types it would hold more values of than its rule allows."""
    final = {merged: survivor for survivor, merged in pairs} | {survivor: survivor for survivor, _ in pairs}
    values: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    rows = Identity.objects.filter(customer_id__in=list(final)).values_list("customer_id", "type", "value")
    for customer_id, identity_type, value in rows:
        if identity_type_of(identity_type).max_per_customer is not None:
            values[final[customer_id]][identity_type].add(value)
    found = {
        survivor: [
            identity_type
            for identity_type, held in types.items()
            if len(held) > identity_type_of(identity_type).max_per_customer
        ]
        for survivor, types in values.items()
    }
    return {survivor: types for survivor, types in found.items() if types}


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


def _merge_consents(consents: list[Consent], survivor_of: dict[int, int]) -> None:
    """Per channel the newest decision wins: an unsubscribe on either profile is never lost."""
    for consent in sorted(consents, key=lambda consent: consent.changed_at):
        consent_record(
            customer_id=survivor_of[consent.customer_id],
            channel=consent.channel,
            status=consent.status,
            changed_at=consent.changed_at,
            origin=consent.origin,
        )
    Consent.objects.filter(pk__in=[consent.pk for consent in consents]).delete()


def _merge_rollups(pairs_json: str, merged_ids: str) -> None:
    """Adds the merged customers' rollups to their survivors' (summed first: several customers may
    merge into one survivor at once), then drops theirs."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO cdp_customereventstats (customer_id, name, first_at, last_at, count, amount_sum)
            SELECT pair.survivor, stats.name, min(stats.first_at), max(stats.last_at), sum(stats.count),
                   sum(stats.amount_sum)
            FROM cdp_customereventstats AS stats
            JOIN json_to_recordset(%s::json) AS pair(merged bigint, survivor bigint)
                ON stats.customer_id = pair.merged
            GROUP BY pair.survivor, stats.name
            ORDER BY pair.survivor, stats.name
            ON CONFLICT (customer_id, name) DO UPDATE SET
                first_at = LEAST(cdp_customereventstats.first_at, EXCLUDED.first_at),
                last_at = GREATEST(cdp_customereventstats.last_at, EXCLUDED.last_at),
                count = cdp_customereventstats.count + EXCLUDED.count,
                amount_sum = cdp_customereventstats.amount_sum + EXCLUDED.amount_sum
            """,
            [pairs_json],
        )
        cursor.execute(
            "DELETE FROM cdp_customereventstats WHERE customer_id = ANY(%s::bigint[])", [merged_ids]
        )
        cursor.execute(
            """
            INSERT INTO cdp_customereventdaily (customer_id, name, day, count)
            SELECT pair.survivor, daily.name, daily.day, sum(daily.count)
            FROM cdp_customereventdaily AS daily
            JOIN json_to_recordset(%s::json) AS pair(merged bigint, survivor bigint)
                ON daily.customer_id = pair.merged
            GROUP BY pair.survivor, daily.name, daily.day
            ORDER BY pair.survivor, daily.name, daily.day
            ON CONFLICT (customer_id, name, day) DO UPDATE
            SET count = cdp_customereventdaily.count + EXCLUDED.count
            """,
            [pairs_json],
        )
        cursor.execute(
            "DELETE FROM cdp_customereventdaily WHERE customer_id = ANY(%s::bigint[])", [merged_ids]
        )


def _rows_move(table: str, pairs_json: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS moved SET customer_id = pair.survivor "  # noqa: S608 (a model's table)
            "FROM json_to_recordset(%s::json) AS pair(merged bigint, survivor bigint) "
            "WHERE moved.customer_id = pair.merged",
            [pairs_json],
        )


def customers_merge(
    *, survivor_id: int, merged_id: int, reason: str, actor=None, override_rules: bool = False
) -> MergeLog:
    """Moves everything of ``merged`` to ``survivor``; ``merged`` then points to ``survivor``."""
    return customers_merge_many(
        pairs=[(survivor_id, merged_id)], reason=reason, actor=actor, override_rules=override_rules
    )[0]


@transaction.atomic
def customers_merge_many(
    *, pairs: list[tuple[int, int]], reason: str, actor=None, override_rules: bool = False
) -> list[MergeLog]:
    """Merges each ``(survivor, merged)`` pair, all at once: one statement per kind of row however many
    pairs (ingestion merges a group's visitors together). A survivor may take several customers; a
    survivor is never also merged in the same call (callers pass the final survivor).

    Every customer is locked in id order, so concurrent merges (A into B, B into C) serialise instead
    of deadlocking, and the later one sees that its customer is already gone (MergeRetry). A pair
    that would break an identity rule raises MergeConflict and nothing is merged.
    """
    survivor_of = dict((merged, survivor) for survivor, merged in pairs)
    if len(survivor_of) != len(pairs) or set(survivor_of) & set(survivor_of.values()):
        raise ValueError("each customer may be merged once, into a survivor that is not merged itself")
    locked = {
        customer.pk: customer
        for customer in Customer.objects.select_for_update()
        .filter(pk__in=set(survivor_of) | set(survivor_of.values()))
        .order_by("pk")
    }
    if len(locked) != len(set(survivor_of) | set(survivor_of.values())) or any(
        customer.merged_into_id for customer in locked.values()
    ):
        raise MergeRetry(f"a customer of {sorted(pairs)} was merged meanwhile")
    violations = _rule_violations(pairs)
    if violations and not override_rules:
        types = sorted({identity_type for found in violations.values() for identity_type in found})
        raise MergeConflict(f"both customers hold a different {', '.join(types)}")

    merged_ids = id_array(survivor_of)
    pairs_json = merge_pairs_json(pairs)
    identity_ids, note_ids = defaultdict(list), defaultdict(list)
    for pk, customer_id in Identity.objects.filter(customer_id__in=survivor_of).values_list(
        "pk", "customer_id"
    ):
        identity_ids[customer_id].append(pk)
    for pk, customer_id in Note.objects.filter(customer_id__in=survivor_of).values_list("pk", "customer_id"):
        note_ids[customer_id].append(pk)
    consents = list(Consent.objects.filter(customer_id__in=survivor_of))
    for table in (Identity._meta.db_table, Event._meta.db_table, Note._meta.db_table):
        _rows_move(table, pairs_json)
    _merge_consents(consents, survivor_of)
    _merge_rollups(pairs_json, merged_ids)

    now = timezone.now()
    for merged_id in sorted(survivor_of):
        _merge_traits(locked[survivor_of[merged_id]], locked[merged_id])
    survivors = [locked[survivor_id] for survivor_id in sorted(set(survivor_of.values()))]
    for survivor in survivors:
        survivor.updated_at = now
    Customer.objects.bulk_update(
        survivors,
        ["traits", "traits_updated_at", "name", "first_seen_at", "last_seen_at", "owner", "updated_at"],
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE cdp_customer AS customer SET merged_into_id = pair.survivor, updated_at = %s
            FROM json_to_recordset(%s::json) AS pair(merged bigint, survivor bigint)
            WHERE customer.id = pair.merged
            """,
            [now, pairs_json],
        )
    customers_merged.send(sender=Customer, pairs=pairs)
    return MergeLog.objects.bulk_create(
        MergeLog(
            survivor_id=survivor_id,
            merged_id=merged_id,
            identity_ids=identity_ids[merged_id],
            note_ids=note_ids[merged_id],
            consents=[
                {
                    "channel": consent.channel,
                    "status": consent.status,
                    "changed_at": consent.changed_at.isoformat(),
                    "origin": consent.origin,
                }
                for consent in consents
                if consent.customer_id == merged_id
            ],
            reason=reason,
            actor=actor,
        )
        for survivor_id, merged_id in pairs
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
