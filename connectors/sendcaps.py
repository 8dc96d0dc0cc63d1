"""The daily cap of messages to one phone number, across customers (``PHONE_DAILY_SEND_CAP``).

Contact policies cap what one customer receives; this caps what one number receives, however many
customers hold it, so that events made up around one number (SMS bombing) or around many (SMS
pumping) cost at most the cap per number and day. The dispatcher asks here after claiming and skips
what is over, with the reason, as it does for unsubscribed customers. Counts are rows of
``PhoneDailySends``, taken under row locks in one short transaction, so concurrent dispatchers of
different accounts never let more through than the cap.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Protocol

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from cdp.sqlvalues import json_rows
from connectors.protocol import Channel

# Channels whose recipient is a phone number.
PHONE_CHANNELS = frozenset({Channel.SMS, Channel.CALL})
REASON_OVER_CAP = gettext_noop("This phone number has had as many messages today as one number may get.")
_swept = {"day": None}


class Capped(Protocol):
    id: int
    channel: str
    recipient: str
    attempts: int


def _sweep(cursor, day: dt.date) -> None:
    """Forgets past days' counts, once per process and day."""
    if _swept["day"] != day:
        cursor.execute("DELETE FROM connectors_phonedailysends WHERE day < %s", [day - dt.timedelta(days=1)])
        _swept["day"] = day


def over_daily_cap(claimed: list[Capped]) -> set[int]:
    """Counts the claimed messages to phone numbers against today's cap; returns the ids of those
    over it (not counted). A message tried before was counted on its first try."""
    cap = settings.PHONE_DAILY_SEND_CAP
    if not cap:
        return set()
    wanted: dict[tuple[str, str], list[Capped]] = defaultdict(list)
    for item in claimed:
        if item.channel in PHONE_CHANNELS and item.recipient and item.attempts <= 1:
            wanted[(item.channel, item.recipient)].append(item)
    if not wanted:
        return set()
    day = timezone.localdate()
    keys = json_rows("channel recipient", sorted(wanted))
    refused: set[int] = set()
    with transaction.atomic(), connection.cursor() as cursor:
        _sweep(cursor, day)
        cursor.execute(
            """
            INSERT INTO connectors_phonedailysends (channel, recipient, day, count)
            SELECT channel, recipient, %s, 0
            FROM json_to_recordset(%s::json) AS k(channel text, recipient text)
            ORDER BY channel, recipient
            ON CONFLICT (channel, recipient, day) DO NOTHING
            """,
            [day, keys],
        )
        cursor.execute(
            """
            SELECT s.id, s.channel, s.recipient, s.count
            FROM connectors_phonedailysends s
            JOIN json_to_recordset(%s::json) AS k(channel text, recipient text)
                ON s.channel = k.channel AND s.recipient = k.recipient
            WHERE s.day = %s
            ORDER BY s.channel, s.recipient
            FOR UPDATE OF s
            """,
            [keys, day],
        )
        taken = []
        for row_id, channel, recipient, count in cursor.fetchall():
            items = sorted(wanted[(channel, recipient)], key=lambda item: item.id)
            room = max(cap - count, 0)
            refused.update(item.id for item in items[room:])
            if items[:room]:
                taken.append((row_id, len(items[:room])))
        if taken:
            cursor.execute(
                """
                UPDATE connectors_phonedailysends s SET count = s.count + t.n
                FROM json_to_recordset(%s::json) AS t(id bigint, n int) WHERE s.id = t.id
                """,
                [json_rows("id n", taken)],
            )
    return refused
