"""Fault run: dispatch workers killed with SIGKILL at random moments, then the outbox checked.

Builds ``cdp_bench_faults`` (dropped and recreated), queues ``--messages`` (10,000) on a sandbox SMS
account limited to ``--rate`` sends/s (400, so the outbox lasts over the rounds) whose provider
answers in ``--latency-ms`` (20 ms) and honours idempotency keys (it counts
every request per key). Then ``--rounds`` (20) times: start a dispatch worker, wait until it is
ready, let it work for a random 0.2-1.5 s, kill its process group with SIGKILL. A last worker
finishes the outbox; leases (``DISPATCH_LEASE_SECONDS``, 3 s here) are expired as beat's sweep would.
Checks and prints: no message lost (each is sent or unknown), none sent twice to the provider,
every message the provider has but we never recorded is ``unknown``, how many were left in doubt.
Exits 1 if a check fails.

    .venv/bin/python bench/dispatch_faults.py [--messages 10000] [--rounds 20] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
from benchdb import database_fresh

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DATABASE = "cdp_bench_faults"
SERVER = "postgres://postgres@127.0.0.1:5432"
BROKER_URL = "redis://127.0.0.1:6379/13"
LAYER_URL = "redis://127.0.0.1:6379/14"
LEASE = 3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    # A limit spreads the outbox over the rounds, so that every kill lands on a working dispatcher.
    parser.add_argument("--rate", type=float, default=400)
    args = parser.parse_args()

    database_fresh(SERVER, DATABASE)
    redis.Redis.from_url(BROKER_URL).flushdb()
    os.environ.update(
        {
            "DATABASE_URL": f"{SERVER}/{DATABASE}",
            "CELERY_BROKER_URL": BROKER_URL,
            "REDIS_URL": LAYER_URL,
            "DISPATCH_LEASE_SECONDS": str(LEASE),
            "DJANGO_SETTINGS_MODULE": "cdp.settings",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db.models import Count

    from cdp.models import Customer
    from connectors.accounts import account_create
    from connectors.dispatcher import leases_expire
    from connectors.models import Message, SandboxDelivery
    from connectors.services import messages_enqueue_many
    from connectors.tasks import dispatch_account

    customer = Customer.objects.create(name="faults")
    account = account_create(
        kind="sandbox_sms",
        name="faults",
        values={
            "latency_ms": args.latency_ms,
            "receipt_delay_seconds": 86400,
            "callback_secret": "bench-secret",
        },
        rate_per_second=args.rate,
    )
    for start in range(0, args.messages, 5000):
        messages_enqueue_many(
            account=account,
            items=[
                (f"f-{index}", customer.pk, f"+86137{index:08d}", {"template_code": "SMS_1", "text": "hi"})
                for index in range(start, min(args.messages, start + 5000))
            ],
        )
    log_dir = Path(os.environ.get("BENCH_LOG_DIR", "/tmp/dispatch-faults"))
    log_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)

    def start_worker(name: str) -> subprocess.Popen:
        log_path = log_dir / f"{name}.log"
        log = open(log_path, "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [str(BIN / "celery"), "-A", "cdp", "worker", "--pool", "solo", "-Q", "dispatch", "-n", f"{name}@%h",
             "--loglevel", "INFO"],
            cwd=ROOT, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while "ready." not in log_path.read_text(errors="replace") and time.monotonic() < deadline:
            time.sleep(0.1)
        return process

    def sent_count() -> int:
        return Message.objects.filter(status="sent").count()

    began = time.perf_counter()
    for number in range(args.rounds):
        worker = start_worker(f"round{number}")
        dispatch_account.delay(account.pk)
        dispatch_account.delay(account.pk)
        before = sent_count()
        time.sleep(rng.uniform(0.2, 1.5))
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        print(f"round {number + 1}: killed after {sent_count() - before} recorded sends", flush=True)
    time.sleep(LEASE + 0.5)
    leases_expire()
    last = start_worker("last")
    try:
        while Message.objects.filter(status__in=["queued", "sending"]).exists():
            dispatch_account.delay(account.pk)
            time.sleep(0.5)
        time.sleep(LEASE + 0.5)
        leases_expire()
    finally:
        os.killpg(last.pid, signal.SIGTERM)
        last.wait(timeout=30)
    elapsed = time.perf_counter() - began

    statuses = dict(Message.objects.values_list("status").annotate(n=Count("id")))
    twice = SandboxDelivery.objects.filter(requests__gt=1).count()
    delivered = dict(SandboxDelivery.objects.values_list("idempotency_key", "provider_message_id"))
    mismatched, provider_has_unrecorded = 0, 0
    for key, status, provider_id in Message.objects.values_list(
        "idempotency_key", "status", "provider_message_id"
    ):
        if status == "sent" and delivered.get(key) != provider_id:
            mismatched += 1
        if status != "sent" and key in delivered:
            provider_has_unrecorded += status != "unknown"
    in_doubt = statuses.get("unknown", 0)
    unknown_at_provider = sum(
        1 for key in Message.objects.filter(status="unknown").values_list("idempotency_key", flat=True)
        if key in delivered
    )  # fmt: skip
    print(f"{args.rounds} rounds over {args.messages} messages in {elapsed:.0f} s: statuses {statuses}")
    print(f"lost: {args.messages - sum(statuses.values())}; sent twice to the provider: {twice}")
    print(f"sent but not matching the provider's record: {mismatched}")
    print(f"at the provider but neither sent nor unknown: {provider_has_unrecorded}")
    print(f"left in doubt (unknown): {in_doubt}, of which the provider had {unknown_at_provider}")
    ok = (
        sum(statuses.values()) == args.messages
        and set(statuses) <= {"sent", "unknown"}
        and twice == 0
        and mismatched == 0
        and provider_has_unrecorded == 0
    )
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
