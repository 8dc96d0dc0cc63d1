"""How late a delay wakes, through the real processes: a Celery worker on the engine and matching
queues and beat (its engine tick every ``JOURNEY_TICK_SECONDS``), production settings.

Builds ``cdp_bench_journeys_wake`` (dropped and recreated): ``--customers`` customers (3,000) and a
journey ``event (bench_go) → delay --delay seconds (30) → exit``. The bench records each customer's
``bench_go`` event as the product does (committed, so the ingest signal queues the matching task),
spread evenly over ``--seconds`` (60), so that delays end all the time while others start, and
waits until every customer has left the delay. A delay's lateness is the time from its end
(``wake_at``: the step's entry plus the delay) to the moment the engine's batch moved it on (the step's
``left_at``). Printed: p50 / p95 / p99 / max lateness beside the target, one tick plus 5 seconds.
The database is dropped at the end unless ``--keep``.

    .venv/bin/python bench/delay_wake.py [--customers 3000] [--seconds 60] [--delay 30] [--tick 2]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from benchdb import database_fresh
from ingest_throughput import Processes, machine_busy_seconds, percentiles, production_env

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SERVER = "postgres://postgres@127.0.0.1:5432"
DATABASE = "cdp_bench_journeys_wake"
BROKER_URL = "redis://127.0.0.1:6379/13"


def setup(customers: int, delay: int) -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection

    from journeys.services import journey_publish, journey_save

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO cdp_customer (name, traits, traits_updated_at, created_at, updated_at)"
            " SELECT '客户' || n, '{}'::jsonb, '{}'::jsonb, now(), now() FROM generate_series(1, %s) AS n",
            [customers],
        )
    graph = {
        "nodes": [
            {"id": "t1", "type": "event_trigger", "config": {"event": "bench_go"}},
            {"id": "d1", "type": "delay", "config": {"seconds": delay}},
            {"id": "x1", "type": "exit", "config": {}},
        ],
        "edges": [
            {"id": "e1", "source": "t1", "sourceHandle": None, "target": "d1"},
            {"id": "e2", "source": "d1", "sourceHandle": None, "target": "x1"},
        ],
    }
    journey_publish(journey=journey_save(name="压测延时", actor=None, draft_graph=graph), actor=None)


def send(seconds: float) -> None:
    """Records each customer's event at an even pace, as ingestion would (committed, then the signal
    queues matching for the customer)."""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection, transaction
    from django.utils import timezone

    from cdp.ingest import system_events_record

    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM cdp_customer ORDER BY id")
        ids = [row[0] for row in cursor.fetchall()]
    started = time.monotonic()
    for index, customer_id in enumerate(ids):
        pause = started + index * seconds / len(ids) - time.monotonic()
        if pause > 0:
            time.sleep(pause)  # the bench's own pacing of arrivals
        with transaction.atomic():
            system_events_record(
                rows=[(customer_id, "bench_go")],
                kind="track",
                properties={},
                moment=timezone.now(),
                message_prefix=f"bench-go-{customer_id}",
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=60.0, help="spread the events over this long")
    parser.add_argument("--delay", type=int, default=30, help="the delay node's seconds")
    parser.add_argument("--tick", type=int, default=2, help="JOURNEY_TICK_SECONDS")
    parser.add_argument("--concurrency", type=int, default=2, help="engine worker processes")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()

    env = database_fresh(SERVER, DATABASE)
    subprocess.run(
        [sys.executable, __file__, "--setup", str(args.customers), str(args.delay)],
        cwd=ROOT,
        env=env,
        check=True,
    )
    import redis  # the project's own dependency

    redis.Redis.from_url(BROKER_URL).flushdb()
    log_dir = Path(tempfile.mkdtemp(prefix="wake-bench-"))
    dsn = f"{SERVER}/{DATABASE}"
    app_env = {**production_env(dsn, BROKER_URL, BROKER_URL, log_dir), "JOURNEY_TICK_SECONDS": str(args.tick)}
    processes = Processes(app_env, log_dir)
    db = psycopg.connect(dsn, autocommit=True)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        processes.start(
            "worker", str(BIN / "celery"), "-A", "cdp", "worker", "-Q", "engine,matching", "--concurrency",
            str(args.concurrency), "-n", "wake@%h", "--without-gossip", "--without-mingle", "-l", "warning",
        )  # fmt: skip
        processes.start(
            "beat", str(BIN / "celery"), "-A", "cdp", "beat", "-l", "warning", "-s", str(log_dir / "beat-schedule")
        )  # fmt: skip
        time.sleep(5)  # the worker and beat start up
        busy_before, mark = machine_busy_seconds(), time.perf_counter()
        sender = processes.start("sender", sys.executable, __file__, "--send", str(args.seconds))
        deadline = time.monotonic() + args.seconds + args.delay + 120
        while time.monotonic() < deadline:
            if sender.poll() not in (None, 0):
                processes.check()
            left = db.execute(
                "SELECT count(*) FROM journeys_step WHERE node_id = 'd1' AND left_at IS NOT NULL"
            )
            if left.fetchone()[0] == args.customers:
                break
            time.sleep(1.0)
        else:
            raise SystemExit(f"not every delay ended in time; logs in {log_dir}")
        busy = (machine_busy_seconds() - busy_before) / (time.perf_counter() - mark)
    finally:
        processes.stop_all()
    late = [
        row[0]
        for row in db.execute(
            "SELECT extract(epoch FROM left_at - entered_at) - %s FROM journeys_step WHERE node_id = 'd1'",
            [args.delay],
        ).fetchall()
    ]
    matched = [
        row[0]
        for row in db.execute(
            "SELECT extract(epoch FROM s.entered_at - e.received_at) FROM journeys_step AS s"
            " JOIN journeys_enrollment AS n ON n.id = s.enrollment_id"
            " JOIN cdp_event AS e ON e.customer_id = n.customer_id AND e.name = 'bench_go'"
            " WHERE s.node_id = 't1'"
        ).fetchall()
    ]
    db.close()
    late_ms = percentiles([float(value) * 1000 for value in late])
    entered_ms = percentiles([float(value) * 1000 for value in matched])
    target = (args.tick + 5) * 1000
    print(
        f"{len(late):,} delays of {args.delay} s, events spread over {args.seconds:g} s, tick {args.tick} s"
    )
    print(
        "delay lateness (left the delay − its end): "
        + ", ".join(f"{name} {value:,.0f} ms" for name, value in late_ms.items() if name != "n")
        + f"; target p99 ≤ one tick + 5 s = {target:,} ms: {'met' if late_ms['p99'] <= target else 'NOT met'}"
    )
    print(
        "event stored to its trigger step: "
        + ", ".join(f"{name} {value:,.0f} ms" for name, value in entered_ms.items() if name != "n")
    )
    print(f"the machine was busy {busy:.2f} of {os.cpu_count()} cores meanwhile")
    if not args.keep:
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--setup":
        setup(int(sys.argv[2]), int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--send":
        send(float(sys.argv[2]))
    else:
        sys.exit(main())
