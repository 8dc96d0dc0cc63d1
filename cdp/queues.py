"""What the task queues hold and how long tasks wait in them, read from the broker.

Every task message carries the time it was queued (header ``cdp_enqueued_at``, set as it is
published). A worker that starts a task records how long it waited, per queue, in a capped stream
on the broker (``cdp:task-waits``); ``/healthz`` and ``bench/task_latency.py`` read the queues'
lengths and their oldest message. Both need a Redis broker: RabbitMQ does not let a client look at
a queue's oldest message without taking it, so there the backlog's age is unknown (None).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from urllib.parse import urlparse

import redis

log = logging.getLogger(__name__)

ENQUEUED_HEADER = "cdp_enqueued_at"
WAITS_STREAM = "cdp:task-waits"
WAITS_KEPT = 100_000


@cache
def _broker_redis(url: str) -> redis.Redis | None:
    parsed = urlparse(url)
    if parsed.scheme == "redis+socket":
        return redis.Redis(unix_socket_path=parsed.path, socket_timeout=2)
    if parsed.scheme in {"redis", "rediss"}:
        return redis.Redis.from_url(url, socket_timeout=2)
    return None


def broker_redis() -> redis.Redis | None:
    from cdp.celery import app

    return _broker_redis(app.conf.broker_url)


def started_after(*, enqueued_at, eta, now: float) -> float | None:
    """Seconds between a task being due (queued, or its ETA if later) and ``now``; None if unstamped."""
    if enqueued_at is None:
        return None
    due = float(enqueued_at)
    if isinstance(eta, str):
        try:
            eta = datetime.fromisoformat(eta)
        except ValueError:
            eta = None
    if isinstance(eta, datetime):
        due = max(due, eta.timestamp())
    return max(now - due, 0.0)


def wait_record(*, queue: str, seconds: float) -> None:
    client = broker_redis()
    if client is None:
        return
    try:
        client.xadd(
            WAITS_STREAM,
            {"queue": queue, "ms": f"{seconds * 1000:.1f}"},
            maxlen=WAITS_KEPT,
            approximate=True,
        )
    except redis.RedisError:  # losing a measurement must never fail the task
        log.debug("could not record a task's wait", exc_info=True)


def waits_since(since: float, *, client: redis.Redis | None = None) -> dict[str, list[float]]:
    """Waits (ms) of tasks started since ``since`` (a Unix time), per queue."""
    client = client or broker_redis()
    if client is None:
        return {}
    waits: dict[str, list[float]] = {}
    start = f"{int(since * 1000)}-0"
    while True:
        rows = client.xrange(WAITS_STREAM, min=start, max="+", count=10_000)
        for _id, fields in rows:
            waits.setdefault(fields[b"queue"].decode(), []).append(float(fields[b"ms"]))
        if len(rows) < 10_000:
            return waits
        last = rows[-1][0].decode()
        millis, seq = last.split("-")
        start = f"{millis}-{int(seq) + 1}"


@dataclass(frozen=True)
class Backlog:
    queue: str
    waiting: int
    oldest_seconds: float | None  # None: empty, or the broker cannot tell


def backlog(queues, *, client: redis.Redis | None = None, now: float | None = None) -> list[Backlog] | None:
    """Each queue's waiting tasks and the age of its oldest; None when the broker is not Redis."""
    client = client or broker_redis()
    if client is None:
        return None
    now = time.time() if now is None else now
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.llen(queue)
        pipe.lindex(queue, -1)  # kombu pushes on the left and takes from the right
    answers = pipe.execute()
    result = []
    for index, queue in enumerate(queues):
        waiting, oldest = answers[2 * index], answers[2 * index + 1]
        age = None
        if oldest is not None:
            try:
                headers = json.loads(oldest).get("headers") or {}
                age = started_after(enqueued_at=headers.get(ENQUEUED_HEADER), eta=headers.get("eta"), now=now)
            except (ValueError, AttributeError):
                age = None
        result.append(Backlog(queue, int(waiting), None if age is None else round(age, 1)))
    return result
