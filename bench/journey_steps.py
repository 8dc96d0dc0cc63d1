"""Journey engine throughput: customers through trigger, delay, condition, sandbox send and wait,
beside the raw claim-and-update rate of the same enrollment rows.

Builds ``cdp_bench_journeys`` (dropped and recreated), ``--customers`` customers (100,000), 80% of
them VIPs, each with a ``bench_signed_up`` event on their timeline, and publishes:

    trigger (bench_signed_up) → delay 1 s → condition (VIP?) ─ vip → send SMS (sandbox) ─ no_response → wait
                                                           └ else ──────────────────────────────────→ wait
    wait for order_completed, 1 s timeout → end

Every send is written to the outbox (rendered, with the customer's phone) and waits for its outcome;
no dispatcher runs (its own figures are ``bench/dispatch_throughput.py``'s), so each send leaves by
``no_response`` after 60 s, and the run lasts at least that long. ``--workers`` processes (2) each take half the
customers through trigger matching (as the ingest signal's task does, 500 at a time), then run the
engine's tick in a loop (what a worker does while beat's ticks keep it busy) until nothing is due.
Steps per second = step rows written ÷ the time from the first worker's start to the last step.

Then the raw rate: every enrollment made due again, the same workers claim them in the engine's batches
with ``FOR UPDATE SKIP LOCKED`` and update them (no node work), rows per second. The ratio of the
two is printed.

    .venv/bin/python bench/journey_steps.py [--customers 100000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchdb import database_fresh

ROOT = Path(__file__).resolve().parents[1]
DATABASE = "cdp_bench_journeys"
SERVER = "postgres://postgres@127.0.0.1:5432"
# Where the tasks that commits queue go (segment refreshes, dispatch wake-ups): nobody runs them here.
BROKER_URL = "redis://127.0.0.1:6379/13"


def _django():
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    import django

    django.setup()


def setup(customers: int) -> None:
    _django()
    from django.db import connection, transaction
    from django.utils import timezone

    from cdp.ingest import system_events_record
    from connectors.accounts import account_create
    from connectors.services import template_save
    from journeys.services import journey_publish, journey_save

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO cdp_customer (name, traits, traits_updated_at, created_at, updated_at)
            SELECT '客户' || n, jsonb_build_object('level', CASE WHEN n %% 5 = 0 THEN 'normal' ELSE 'vip' END),
                   '{}'::jsonb, now(), now()
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
    account = account_create(
        kind="sandbox_sms",
        name="短信沙箱",
        values={"callback_secret": "bench-secret-1"},
        rate_per_second=10_000,
    )
    template_save(
        key="bench-sms", name="压测短信", channel="sms", body={"template_code": "SMS_1", "params": {}},
        known_traits=set(), allow_unknown=True,
    )  # fmt: skip
    graph = {
        "nodes": [
            {"id": "t1", "type": "event_trigger", "config": {"event": "bench_signed_up"}},
            {"id": "d1", "type": "delay", "config": {"seconds": 1}},
            {
                "id": "c1",
                "type": "condition",
                "config": {"branches": [{"id": "vip", "rule": {"trait": "level", "op": "eq", "value": "vip"}}]},
            },
            {"id": "s1", "type": "send", "config": {"account": account.pk, "template": "bench-sms",
                                                   "no_response_seconds": 60, "ends": ["delivered"]}},
            {"id": "w1", "type": "wait_for_event",
             "config": {"event": "order_completed", "timeout_seconds": 1, "ends": ["happened", "timed_out"]}},
        ],
        "edges": [
            {"id": "e1", "source": "t1", "sourceHandle": None, "target": "d1"},
            {"id": "e2", "source": "d1", "sourceHandle": None, "target": "c1"},
            {"id": "e3", "source": "c1", "sourceHandle": "vip", "target": "s1"},
            {"id": "e4", "source": "c1", "sourceHandle": "else", "target": "w1"},
            {"id": "e5", "source": "s1", "sourceHandle": "failed", "target": "w1"},
            {"id": "e6", "source": "s1", "sourceHandle": "no_response", "target": "w1"},
        ],
    }  # fmt: skip
    journey = journey_save(name="压测旅程", actor=None, draft_graph=graph)
    journey_publish(journey=journey, actor=None)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT id FROM cdp_customer ORDER BY id")
        ids = [row[0] for row in cursor.fetchall()]
        system_events_record(
            rows=[(customer_id, "bench_signed_up") for customer_id in ids],
            kind="track",
            properties={"form": "bench"},
            moment=timezone.now(),
            message_prefix="bench",
            rules_follow=False,
        )


def worker(index: int, workers: int) -> None:
    _django()
    from django.db import connection

    from journeys.engine import CLAIM_BATCH, tick
    from journeys.matching import events_match
    from journeys.models import Enrollment

    started = time.time()
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM cdp_customer WHERE id %% %s = %s ORDER BY id", [workers, index])
        mine = [row[0] for row in cursor.fetchall()]
    visits = 0
    for start in range(0, len(mine), 500):
        events_match(customer_ids=mine[start : start + 500])
    visits += 2 * len(mine)  # the trigger and the delay's start ran with the matching
    last_step = time.time()
    while True:
        ran = tick(batch=CLAIM_BATCH, budget_seconds=5)
        visits += ran
        if ran:
            last_step = time.time()
            continue
        if not Enrollment.objects.filter(status="active").exists():
            break
        time.sleep(0.05)  # waits that have not ended yet: nothing to claim
    print(json.dumps({"started": started, "last_step": last_step, "visits": visits}))


def raw_worker() -> None:
    _django()
    from django.db import connection, transaction

    from journeys.engine import CLAIM_BATCH

    started, rows = time.time(), 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT e.id FROM journeys_enrollment AS e
                JOIN journeys_journey AS j ON j.id = e.journey_id AND j.status = 'active'
                WHERE e.status = 'active' AND e.wake_at <= now()
                ORDER BY e.wake_at LIMIT %s FOR UPDATE OF e SKIP LOCKED
                """,
                [CLAIM_BATCH],
            )
            ids = [row[0] for row in cursor.fetchall()]
            if not ids:
                break
            cursor.execute(
                "UPDATE journeys_enrollment SET status = 'completed', wake_at = NULL, finished_at = now()"
                " WHERE id = ANY(%s)",
                [ids],
            )
            rows += len(ids)
    print(json.dumps({"started": started, "last_step": time.time(), "visits": rows}))


def run_workers(env: dict, workers: int, mode: str) -> list[dict]:
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, mode, str(index), str(workers)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
        )
        for index in range(workers)
    ]
    results = []
    for process in processes:
        out, _err = process.communicate()
        if process.returncode:
            raise SystemExit(f"a worker failed ({process.returncode})")
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    env = {**database_fresh(SERVER, DATABASE), "CELERY_BROKER_URL": BROKER_URL}
    os.environ.update(env)
    began = time.time()
    subprocess.run([sys.executable, __file__, "--setup", str(args.customers)], cwd=ROOT, env=env, check=True)
    print(f"setup: {args.customers:,} customers and their events in {time.time() - began:.1f} s")

    results = run_workers(env, args.workers, "--worker")
    seconds = max(r["last_step"] for r in results) - min(r["started"] for r in results)
    import psycopg

    with psycopg.connect(f"{SERVER}/{DATABASE}") as db:
        steps = db.execute("SELECT count(*) FROM journeys_step").fetchone()[0]
        by_status = dict(
            db.execute("SELECT status, count(*) FROM journeys_enrollment GROUP BY status").fetchall()
        )
        messages = db.execute("SELECT count(*) FROM connectors_message").fetchone()[0]
        twice = db.execute(
            "SELECT count(*) FROM (SELECT 1 FROM journeys_step GROUP BY enrollment_id, node_id, visit"
            " HAVING count(*) > 1) AS d"
        ).fetchone()[0]
        visits = sum(r["visits"] for r in results)
        print(f"enrollments by status: {by_status}; outbox messages: {messages:,}; steps repeated: {twice}")
        print(f"engine: {steps:,} steps ({visits:,} node runs incl. resumes) in {seconds:.1f} s "
              f"= {steps / seconds:,.0f} steps/s ({visits / seconds:,.0f} runs/s), {args.workers} workers")  # fmt: skip
        db.execute("UPDATE journeys_enrollment SET status = 'active', wake_at = now() - interval '1 second'")
        db.commit()
    raw = run_workers(env, args.workers, "--raw")
    raw_seconds = max(r["last_step"] for r in raw) - min(r["started"] for r in raw)
    rows = sum(r["visits"] for r in raw)
    print(f"raw claim-and-update: {rows:,} rows in {raw_seconds:.1f} s = {rows / raw_seconds:,.0f} rows/s")
    print(f"ratio: engine steps/s ÷ raw rows/s = {(steps / seconds) / (rows / raw_seconds):.3f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--setup":
        setup(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(int(sys.argv[2]), int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--raw":
        raw_worker()
    else:
        main()
