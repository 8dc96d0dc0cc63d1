"""The shared rate limit: a token bucket per channel account in PostgreSQL, taken from in one
statement by every dispatching worker, refilled from ``clock_timestamp()``."""

from __future__ import annotations

from django.db import connection

# The bucket holds at most this many seconds of sends: short bursts, and a limit that holds.
BURST_SECONDS = 0.2


def tokens_take(*, account_id: int, wanted: int) -> tuple[int, float]:
    """Takes up to ``wanted`` whole tokens; returns how many and the account's rate."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH cur AS (
                SELECT b.account_id, clock_timestamp() AS now_ts, a.rate_per_second AS rate,
                       LEAST(GREATEST(a.rate_per_second * %s, 1),
                             b.tokens + EXTRACT(EPOCH FROM clock_timestamp() - b.refilled_at)
                                        * a.rate_per_second) AS available
                FROM connectors_ratebucket b JOIN connectors_channelaccount a ON a.id = b.account_id
                WHERE b.account_id = %s
                FOR UPDATE OF b
            )
            UPDATE connectors_ratebucket b
            SET tokens = cur.available - LEAST(%s, floor(cur.available)), refilled_at = cur.now_ts
            FROM cur WHERE b.account_id = cur.account_id
            RETURNING LEAST(%s, floor(cur.available))::int, cur.available, cur.rate
            """,
            [BURST_SECONDS, account_id, wanted, wanted],
        )
        row = cursor.fetchone()
    if row is None:  # an account made without its bucket: give it one, the next take uses it
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO connectors_ratebucket (account_id, tokens, refilled_at)"
                " SELECT id, 0, now() FROM connectors_channelaccount WHERE id = %s ON CONFLICT DO NOTHING",
                [account_id],
            )
        return 0, 0.0
    granted, _available, rate = row
    return max(granted, 0), rate


def tokens_return(*, account_id: int, count: int) -> None:
    if count > 0:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE connectors_ratebucket SET tokens = tokens + %s WHERE account_id = %s",
                [count, account_id],
            )


def tokens_available(*, tokens: float, refilled_at, rate: float, now) -> float:
    """What ``tokens_take`` would find in the bucket at ``now`` (the same refill and cap), for pages
    that say whether the limit is spent; it takes nothing."""
    elapsed = max((now - refilled_at).total_seconds(), 0.0)
    return min(max(rate * BURST_SECONDS, 1), tokens + elapsed * rate)
