"""A scheduled audience of a million customers: from its moment to every member enrolled and every
first send queued in the outbox, through the real processes (a Celery worker on the engine and
matching queues and beat, production settings).

Builds ``cdp_bench_journeys_audience`` (dropped and recreated): ``--customers`` customers (1,000,000)
made with set-based SQL, each with a phone, all of them members of a segment, an SMS sandbox account
and template, and a journey published with

    scheduled audience (the segment, once, at the moment) → send SMS (sandbox) → end

The moment is ``--lead`` seconds (20) after publishing; then the worker (``--concurrency`` processes,
2) and beat start. Beat's engine tick (every second) starts the occurrence once, enrolls the members
in chunks of 50,000 (one ``INSERT ... SELECT`` from the membership each, the trigger's step written
with them), and runs the engine on the due enrollments: each batch of 500 renders its messages and
writes them to the outbox in one statement. No dispatcher runs (the outbox is the end of this
figure; ``bench/dispatch_throughput.py`` measures sending).

Printed: seconds from the moment to the last member enrolled, and to the last first send queued;
the outbox's count beside the members' (no one twice, no one missing). The database is dropped at
the end unless ``--keep``.

    .venv/bin/python bench/scheduled_audience.py [--customers 1000000] [--concurrency 2] [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from benchdb import database_fresh
from ingest_throughput import Processes, machine_busy_seconds, production_env

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SERVER = "postgres://postgres@127.0.0.1:5432"
DATABASE = "cdp_bench_journeys_audience"
BROKER_URL = "redis://127.0.0.1:6379/13"
SEGMENT = "bench-audience"


def setup(customers: int, lead: float) -> None:
    """Runs in a child process with the bench database's environment."""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection
    from django.utils import timezone

    from connectors.accounts import account_create
    from connectors.services import template_save
    from journeys.services import journey_publish, journey_save

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO cdp_customer (name, traits, traits_updated_at, created_at, updated_at)
            SELECT '客户' || n, jsonb_build_object('level', 'vip'), '{}'::jsonb, now(), now()
            FROM generate_series(1, %s) AS n
            """,
            [customers],
        )
        cursor.execute(
            """
            INSERT INTO cdp_identity (customer_id, type, value, encrypted_value, first_seen_at)
            SELECT id, 'phone', '+86139' || lpad(id::text, 8, '0'), '', now() FROM cdp_customer
            """
        )
        cursor.execute(
            """
            INSERT INTO segments_segment (key, name, description, kind, rule, member_count, refreshed_at,
                                          created_at, updated_at)
            VALUES (%s, '压测人群', '', 'static', NULL, %s, now(), now(), now())
            RETURNING id
            """,
            [SEGMENT, customers],
        )
        segment_id = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO segments_segmentmember (segment_id, customer_id, entered_at)"
            " SELECT %s, id, now() FROM cdp_customer ORDER BY id",
            [segment_id],
        )
        cursor.execute("ANALYZE")
    account = account_create(
        kind="sandbox_sms",
        name="短信沙箱",
        values={"callback_secret": "bench-secret-1"},
        rate_per_second=10_000,
    )
    template_save(
        key="bench-sms", name="压测短信", channel="sms",
        body={"template_code": "SMS_1", "params": {"name": "{{ customer.name }}"}},
        known_traits=set(), allow_unknown=True,
    )  # fmt: skip
    moment = timezone.now() + dt.timedelta(seconds=lead)
    graph = {
        "nodes": [
            {"id": "t1", "type": "scheduled_trigger",
             "config": {"segment": SEGMENT, "repeat": "once", "at": moment.isoformat()}},
            {"id": "s1", "type": "send", "config": {"account": account.pk, "template": "bench-sms",
                                                   "no_response_seconds": 3600,
                                                   "ends": ["delivered", "failed", "no_response"]}},
        ],
        "edges": [{"id": "e1", "source": "t1", "sourceHandle": None, "target": "s1"}],
    }  # fmt: skip
    journey = journey_save(name="压测定时人群", actor=None, draft_graph=graph)
    journey_publish(journey=journey, actor=None)
    print(moment.isoformat())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=2, help="engine worker processes")
    parser.add_argument("--lead", type=float, default=20.0, help="seconds from publishing to the moment")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()

    env = database_fresh(SERVER, DATABASE)
    began = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--setup", str(args.customers), str(args.lead)],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    moment = dt.datetime.fromisoformat(out.stdout.strip().splitlines()[-1])
    print(
        f"setup: {args.customers:,} customers, phones and segment members in {time.perf_counter() - began:.0f} s"
    )

    import redis  # the project's own dependency

    redis.Redis.from_url(BROKER_URL).flushdb()
    log_dir = Path(tempfile.mkdtemp(prefix="audience-bench-"))
    dsn = f"{SERVER}/{DATABASE}"
    processes = Processes(
        {**production_env(dsn, BROKER_URL, BROKER_URL, log_dir), "JOURNEY_TICK_SECONDS": "1"}, log_dir
    )
    db = psycopg.connect(dsn, autocommit=True)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        processes.start(
            "worker", str(BIN / "celery"), "-A", "cdp", "worker", "-Q", "engine,matching", "--concurrency",
            str(args.concurrency), "-n", "audience@%h", "--without-gossip", "--without-mingle", "-l", "warning",
        )  # fmt: skip
        processes.start(
            "beat", str(BIN / "celery"), "-A", "cdp", "beat", "-l", "warning", "-s", str(log_dir / "beat-schedule")
        )  # fmt: skip
        busy_before, mark = machine_busy_seconds(), time.perf_counter()
        deadline = time.monotonic() + args.timeout
        enrolled_at = None
        while time.monotonic() < deadline:
            processes.check()
            finished = db.execute("SELECT finished_at, enrolled FROM journeys_scheduledrun").fetchone()
            if finished and finished[0] and enrolled_at is None:
                enrolled_at = finished[0]
                print(
                    f"enrolled: {finished[1]:,} members, {(enrolled_at - moment).total_seconds():.1f} s after the moment"
                )
            if enrolled_at is not None:
                left = db.execute(
                    "SELECT count(*) FROM journeys_enrollment WHERE status = 'active' AND phase = 'enter'"
                ).fetchone()[0]
                if left == 0:
                    break
            time.sleep(1.0)
        else:
            raise SystemExit(f"not done within {args.timeout:.0f} s; logs in {log_dir}")
        busy = (machine_busy_seconds() - busy_before) / (time.perf_counter() - mark)
    finally:
        processes.stop_all()
    members = db.execute("SELECT count(*) FROM segments_segmentmember").fetchone()[0]
    messages, customers, last = db.execute(
        "SELECT count(*), count(DISTINCT customer_id), max(created_at) FROM connectors_message"
    ).fetchone()
    first_enrolled = db.execute("SELECT min(enrolled_at) FROM journeys_enrollment").fetchone()[0]
    print(f"first member enrolled {(first_enrolled - moment).total_seconds():.1f} s after the moment")
    print(
        f"first sends queued: {messages:,} messages to {customers:,} customers ({members:,} members), "
        f"the last {(last - moment).total_seconds():.1f} s after the moment "
        f"({messages / (last - moment).total_seconds():,.0f} sends/s); target: under 600 s"
    )
    print(f"the machine was busy {busy:.2f} of {os.cpu_count()} cores meanwhile")
    db.close()
    if not args.keep:
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    return 0 if messages == members == customers else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--setup":
        setup(int(sys.argv[2]), float(sys.argv[3]))
    else:
        sys.exit(main())
