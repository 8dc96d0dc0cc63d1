"""Merging two customers into one, under the identity rules, so that nothing is lost or counted twice."""

from __future__ import annotations

from collections import defaultdict

from django.db import connection, transaction

from cdp.identity import identity_type_of
from cdp.models import Customer, Event, Identity, MergeLog


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
def customers_merge(*, survivor_id: int, merged_id: int, reason: str, actor=None) -> MergeLog:
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
    if violations:
        raise MergeConflict(f"both customers hold a different {', '.join(violations)}")
    survivor, merged = locked[survivor_id], locked[merged_id]
    identity_ids = list(Identity.objects.filter(customer_id=merged_id).values_list("pk", flat=True))
    Identity.objects.filter(customer_id=merged_id).update(customer_id=survivor_id)
    Event.objects.filter(customer_id=merged_id).update(customer_id=survivor_id)
    _merge_rollups(survivor_id, merged_id)
    _merge_traits(survivor, merged)
    survivor.save()
    merged.merged_into_id = survivor_id
    merged.save(update_fields=["merged_into", "updated_at"])
    return MergeLog.objects.create(
        survivor_id=survivor_id, merged_id=merged_id, identity_ids=identity_ids, reason=reason, actor=actor
    )
