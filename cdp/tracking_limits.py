"""Rate limits of the tracking API: token buckets per source, per source and client address, and per
phone number named in the events (the last two for client-side sources only, see ``SourceTrust``).

With ``REDIS_URL`` set the buckets live in Redis, shared by every web process: one round trip per
request (a script that checks every bucket and takes from all of them or from none), no database.
Without it (a development machine with no Redis), or while Redis does not answer, each process keeps
its own buckets: the limits then hold per process.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

from django.conf import settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Bucket:
    key: str
    rate: float  # tokens added per second
    burst: float  # at most this many tokens held
    cost: float = 1.0


# The time comes from the web process; requests run in threads, so a call may carry an earlier time
# than the one before it: a bucket's clock never goes back, or the same refill would count twice.
# Checks every bucket, then takes from all of them or from none. Returns the buckets that are short,
# as (position, seconds until it would allow the request) pairs: none, and the request may go on.
_SCRIPT = """
local now = tonumber(ARGV[1])
local short = {}
local tokens = {}
local clocks = {}
for i = 1, #KEYS do
  local rate, burst, cost = tonumber(ARGV[i * 3 - 1]), tonumber(ARGV[i * 3]), tonumber(ARGV[i * 3 + 1])
  local held = redis.call('HMGET', KEYS[i], 't', 'at')
  local t = tonumber(held[1]) or burst
  local at = tonumber(held[2]) or now
  t = math.min(burst, t + math.max(0, now - at) * rate)
  tokens[i] = t
  clocks[i] = math.max(now, at)
  if t < cost then
    short[#short + 1] = i - 1
    short[#short + 1] = tostring((cost - t) / rate)
  end
end
if #short > 0 then return short end
for i = 1, #KEYS do
  local rate, burst, cost = tonumber(ARGV[i * 3 - 1]), tonumber(ARGV[i * 3]), tonumber(ARGV[i * 3 + 1])
  redis.call('HSET', KEYS[i], 't', tokens[i] - cost, 'at', clocks[i])
  redis.call('PEXPIRE', KEYS[i], math.ceil(burst / rate * 1000) + 1000)
end
return short
"""

_lock = threading.Lock()
_local: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
_redis: dict[str, object] = {}
_REDIS_RETRY_SECONDS = 5.0


def _local_take(buckets: list[Bucket], now: float) -> dict[str, float]:
    with _lock:
        if len(_local) > 200_000:  # addresses and phones of a flood must not grow it without bound
            _local.clear()
        tokens = []
        short = {}
        for bucket in buckets:
            held, at = _local.get(bucket.key, (bucket.burst, now))
            held = min(bucket.burst, held + max(0.0, now - at) * bucket.rate)
            tokens.append((held, max(now, at)))
            if held < bucket.cost:
                short[bucket.key] = (bucket.cost - held) / bucket.rate
        if short:
            return short
        for bucket, (held, at) in zip(buckets, tokens, strict=True):
            _local[bucket.key] = (held - bucket.cost, at)
        return short


def _script():
    """The Redis script, or None without Redis (or for a few seconds after it failed to answer)."""
    url = settings.REDIS_URL
    if not url or time.monotonic() < _redis.get("retry_at", 0.0):
        return None
    if _redis.get("url") != url:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)
        _redis.update(url=url, script=client.register_script(_SCRIPT))
    return _redis["script"]


def limits_forget() -> None:
    """Empties this process's buckets and drops its Redis client (tests, a changed REDIS_URL)."""
    with _lock:
        _local.clear()
    _redis.clear()
    _refused_until.clear()


def tokens_take(buckets: list[Bucket]) -> dict[str, float]:
    """Takes one request's tokens from every bucket, or none. Returns the buckets that are short, by
    key, each with the seconds until it would allow the request: empty, the request may go on."""
    if not buckets:
        return {}
    # A request never costs more than a bucket holds: it would wait for ever.
    buckets = [Bucket(b.key, b.rate, b.burst, min(b.cost, b.burst)) for b in buckets]
    now = time.time()
    script = _script()
    if script is not None:
        args = [now]
        for bucket in buckets:
            args += [bucket.rate, bucket.burst, bucket.cost]
        try:
            short = script(keys=[f"cdp:limit:{b.key}" for b in buckets], args=args)
            return {buckets[int(short[i])].key: float(short[i + 1]) for i in range(0, len(short), 2)}
        except Exception:  # Redis away: the process's own buckets hold meanwhile, the API answers
            log.warning("rate limits: Redis did not answer, limiting in this process", exc_info=True)
            _redis["retry_at"] = time.monotonic() + _REDIS_RETRY_SECONDS
    return _local_take(buckets, now)


# Who is known to be over a limit, until when: (write key, client address, or "" for the whole source).
_refused_until: dict[tuple[str, str], float] = {}


def refusal_remember(who: tuple[str, str], wait: float) -> None:
    """Until its bucket refills, ``who`` is refused before any work (``refused_for``): a bucket only
    refills with time, so nothing another process does can let it through sooner."""
    if len(_refused_until) > 100_000:
        _refused_until.clear()
    _refused_until[who] = time.time() + wait


def refused_for(*who: tuple[str, str]) -> float:
    """Seconds until the first of ``who`` is no longer known to be over its limit (0: none is)."""
    if not _refused_until:
        return 0.0
    return max(0.0, max(_refused_until.get(one, 0.0) for one in who) - time.time())


def retry_after(wait: float) -> int:
    """Whole seconds for the Retry-After header (at least 1)."""
    return max(1, math.ceil(wait))
