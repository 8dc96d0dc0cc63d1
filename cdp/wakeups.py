"""At most one queued copy of each wake-up: a dispatcher for an account, a sweep from beat.

A wake-up says "look at this now"; two queued copies of it do no more than one, and on a busy
machine copies pile up faster than workers take them (the quickstart once held 160 stale sweeps in
front of one dispatcher). ``wake_once`` queues the task only when no copy of it is waiting, and
gives the message the same expiry: a copy lost with its worker stops blocking the key when its
message would have expired anyway. The key is released the moment a worker starts the task
(``cdp.celery``), so work that arrives while it runs gets a wake-up of its own.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import connection
from django.utils import timezone

log = logging.getLogger(__name__)

# The message header that carries the key from the publisher to the worker.
HEADER = "cdp_wakeup"


def wakeup_claim(*, key: str, seconds: float) -> bool:
    """True when no copy of ``key`` is waiting (the caller then queues one), False otherwise."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO cdp_pendingwakeup (key, expires_at) VALUES (%s, %s)
            ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at
            WHERE cdp_pendingwakeup.expires_at < %s
            RETURNING key
            """,
            [key, now + dt.timedelta(seconds=seconds), now],
        )
        return cursor.fetchone() is not None


def wakeup_release(*, key: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM cdp_pendingwakeup WHERE key = %s", [key])


def wake_once(task, *, key: str, expires: float, args: tuple = (), countdown: float | None = None) -> bool:
    """Queues ``task`` unless a copy with the same key waits; returns whether it was queued."""
    if not wakeup_claim(key=key, seconds=expires + (countdown or 0)):
        return False
    try:
        task.apply_async(args, expires=expires + (countdown or 0), countdown=countdown, headers={HEADER: key})
    except Exception:
        wakeup_release(key=key)
        raise
    return True


def wakeup_started(request) -> None:
    """Called as a worker starts a task: a wake-up's key is free again."""
    key = getattr(request, HEADER, None)
    if key:
        wakeup_release(key=key)
