"""The ingest worker alone: how fast one process turns accepted requests into customers, events and
rollups, with no HTTP and no broker in the way (the upper bound the end-to-end figure chases).

Creates ``cdp_bench_worker`` (dropped and recreated) on the local PostgreSQL, migrates it, stores the
same synthetic traffic as ``bench/ingest_throughput.py`` in the inbox (as the tracking API would:
validated, one row per request of 100), then processes it all in this process and prints events/s,
the inbox's own rate, and (with ``--profile``) where the time went.

    .venv/bin/python bench/ingest_worker.py [--events 50000] [--customers 5000] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import os
import pstats
import random
import sys
import time
from pathlib import Path

import redis
from benchdb import database_fresh

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
DB_NAME = "cdp_bench_worker"
BROKER_URL = "redis://127.0.0.1:6379/11"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--profile", action="store_true", help="print the 25 costliest functions")
    parser.add_argument("--sort", default="cumulative", help="profile order: cumulative or tottime")
    parser.add_argument("--statements", action="store_true", help="print time spent per SQL statement")
    parser.add_argument("--phases", action="store_true", help="print wall time per processing phase")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    os.environ.update(database_fresh(args.pg, DB_NAME))
    # The tasks a stored group queues (segment refresh, journey matching) go to a broker database of
    # their own, emptied before and after: no worker runs them here, this measures the ingest worker.
    os.environ["CELERY_BROKER_URL"] = BROKER_URL
    broker = redis.Redis.from_url(BROKER_URL)
    broker.flushdb()

    import django

    django.setup()
    from ingest_throughput import events_make, people_make, weights_make

    from cdp import tracking
    from cdp.gctune import collector_tune
    from cdp.ingest import batches_process, inbox_store
    from cdp.models import Source

    rng = random.Random(args.seed)
    people = people_make(args.customers, rng)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    events = events_make(people, weights_make(len(people), rng), args.events, start, 3600.0, rng)
    source = Source.objects.create(name="bench", kind=Source.Kind.SERVER)  # its identifiers merge customers

    began = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    for first in range(0, len(events), args.batch_size):
        chunk = events[first : first + args.batch_size]
        cleaned = [
            tracking._clean_message(message, message["type"], f"batch[{i}]", None, now)
            for i, message in enumerate(chunk)
        ]
        inbox_store(source=source, events=cleaned, enqueue=False)
    stored_in = time.perf_counter() - began

    phases: dict[str, float] = {}
    if args.phases:
        import cdp.ingest as ingest

        def timed_phase(name, function):
            def wrapper(*args, **kwargs):
                started = time.perf_counter()
                try:
                    return function(*args, **kwargs)
                finally:
                    phases[name] = phases.get(name, 0.0) + time.perf_counter() - started

            return wrapper

        for name in (
            "_claim",
            "_prepare",
            "_new_message_ids",
            "_lock_customers",
            "_write_group",
            "_write_customers",
            "_store_events",
            "_update_rollups",
            "_record_consents",
            "shared_counts_add",
            "publish_customers_changed",
            "customers_merge_many",
            "review_open",
        ):
            setattr(ingest, name, timed_phase(name, getattr(ingest, name)))
        for name in ("load", "resolve", "save_identities"):
            setattr(ingest._Resolver, name, timed_phase(name, getattr(ingest._Resolver, name)))
    collector_tune()  # as the Celery worker does at start
    profiler = cProfile.Profile() if args.profile else None
    began, cpu_began = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    timings: dict[str, list[float]] = {}

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            key = " ".join(sql.split())[:90]
            timings.setdefault(key, []).append(time.perf_counter() - started)

    from django.db import connection

    with connection.execute_wrapper(timed) if args.statements else contextlib.nullcontext():
        stored = batches_process(limit=10**9)
    if profiler:
        profiler.disable()
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu_began

    print(f"validate + inbox: {len(events) / stored_in:,.0f} events/s ({stored_in:.1f} s, one process)")
    print(f"worker: {stored:,} events stored in {elapsed:.1f} s = {stored / elapsed:,.0f} events/s")
    print(
        f"worker CPU {cpu:.1f} s ({cpu / stored * 1e6:.0f} µs an event); waiting on PostgreSQL"
        f" {elapsed - cpu:.1f} s ({(elapsed - cpu) / stored * 1e6:.0f} µs an event)"
    )
    for name, spent in sorted(phases.items(), key=lambda item: -item[1]):
        print(f"{spent:7.2f} s  {spent / stored * 1e6:5.0f} µs an event  {name}")
    for key, spent in sorted(timings.items(), key=lambda item: -sum(item[1]))[:15]:
        print(f"{sum(spent):7.2f} s {len(spent):6} × {key}")
    if profiler:
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(40)
    broker.flushdb()
    return 0 if stored == len(events) else 1


if __name__ == "__main__":
    raise SystemExit(main())
