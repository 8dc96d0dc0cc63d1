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
import cProfile
import datetime as dt
import os
import pstats
import random
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
DB_NAME = "cdp_bench_worker"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--profile", action="store_true", help="print the 25 costliest functions")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB_NAME}")
    os.environ["DATABASE_URL"] = f"{args.pg}/{DB_NAME}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, check=True)

    import django

    django.setup()
    from ingest_throughput import events_make, people_make, weights_make

    from cdp import tracking
    from cdp.ingest import batches_process, inbox_store
    from cdp.models import Source

    rng = random.Random(args.seed)
    people = people_make(args.customers, rng)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    events = events_make(people, weights_make(len(people), rng), args.events, start, 3600.0, rng)
    source = Source.objects.create(name="bench", kind=Source.Kind.WEB)

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

    profiler = cProfile.Profile() if args.profile else None
    began, cpu_began = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
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
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    return 0 if stored == len(events) else 1


if __name__ == "__main__":
    raise SystemExit(main())
