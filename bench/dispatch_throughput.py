"""Dispatch throughput and the shared rate limit, with real Celery dispatch workers on Redis.

Builds ``cdp_bench_dispatch`` (dropped and recreated), creates sandbox SMS accounts whose provider
answers in ``--latency-ms`` (50 ms by default), then:

1. throughput: ``--messages`` messages (20,000) on an account with no effective limit, dispatched by
   ``--workers`` workers (2); sends per second from the first to the last ``sent_at``, and wall time;
2. rate limit: for each ``--rates`` setting (100 and 300 sends/s), enough messages for
   ``--rate-seconds`` (40 s) on an account with that limit, the same workers; the rate measured over
   the steady middle (the first and last 5 s left out), and its distance from the setting.

Receipts are off (their delay is a day) so the figures are the dispatcher's alone. The processes
started here are stopped at the end, also on Ctrl-C or an error.

    .venv/bin/python bench/dispatch_throughput.py [--messages 20000] [--workers 2] [--latency-ms 50]
        [--rates 100,300] [--rate-seconds 40]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
from benchdb import database_fresh

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DATABASE = "cdp_bench_dispatch"
SERVER = "postgres://postgres@127.0.0.1:5432"
BROKER_URL = "redis://127.0.0.1:6379/11"
LAYER_URL = "redis://127.0.0.1:6379/12"


def start_workers(count: int, log_dir: Path) -> list[subprocess.Popen]:
    processes = []
    for number in range(count):
        log = open(log_dir / f"worker{number}.log", "wb")  # noqa: SIM115
        processes.append(
            subprocess.Popen(
                [str(BIN / "celery"), "-A", "cdp", "worker", "--pool", "solo", "-Q", "dispatch",
                 "-n", f"bench{number}@%h", "--loglevel", "WARNING"],
                cwd=ROOT, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        )  # fmt: skip
    return processes


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--rates", default="100,300")
    parser.add_argument("--rate-seconds", type=int, default=40)
    args = parser.parse_args()

    database_fresh(SERVER, DATABASE)
    redis.Redis.from_url(BROKER_URL).flushdb()
    os.environ.update(
        {
            "DATABASE_URL": f"{SERVER}/{DATABASE}",
            "CELERY_BROKER_URL": BROKER_URL,
            "REDIS_URL": LAYER_URL,
            "DJANGO_SETTINGS_MODULE": "cdp.settings",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db.models import Max, Min

    from cdp.models import Customer
    from connectors.accounts import account_create
    from connectors.models import Message
    from connectors.services import messages_enqueue_many
    from connectors.tasks import dispatch_account

    customer = Customer.objects.create(name="bench")

    def account_with_outbox(name: str, rate: float, count: int):
        account = account_create(
            kind="sandbox_sms",
            name=name,
            values={
                "latency_ms": args.latency_ms,
                "receipt_delay_seconds": 86400,
                "callback_secret": "bench-secret",
            },
            rate_per_second=rate,
        )
        for start in range(0, count, 5000):
            items = [
                (
                    f"{name}-{index}",
                    customer.pk,
                    f"+86139{index:08d}",
                    {"template_code": "SMS_1", "text": "hi"},
                )
                for index in range(start, min(count, start + 5000))
            ]
            messages_enqueue_many(account=account, items=items)
        return account

    def run(account, count: int) -> float:
        began = time.perf_counter()
        for _ in range(args.workers * 2):
            dispatch_account.delay(account.pk)
        while Message.objects.filter(account=account, status__in=["queued", "sending"]).exists():
            time.sleep(0.5)
            dispatch_account.delay(account.pk)  # what beat's sweep does every 2 s
        return time.perf_counter() - began

    log_dir = Path(os.environ.get("BENCH_LOG_DIR", "/tmp/dispatch-bench"))
    log_dir.mkdir(parents=True, exist_ok=True)
    workers = start_workers(args.workers, log_dir)
    try:
        time.sleep(4)  # the workers start
        throughput = account_with_outbox("throughput", 100_000, args.messages)
        wall = run(throughput, args.messages)
        sent = Message.objects.filter(account=throughput, status="sent")
        span = sent.aggregate(first=Min("sent_at"), last=Max("sent_at"))
        seconds = (span["last"] - span["first"]).total_seconds()
        print(f"machine: {os.cpu_count()} cores; load before: {os.getloadavg()[0]:.2f}")
        print(
            f"throughput: {sent.count()} sent of {args.messages} by {args.workers} workers, provider latency "
            f"{args.latency_ms} ms: {sent.count() / seconds:.0f} sends/s between first and last send "
            f"({seconds:.1f} s); wall {wall:.1f} s including the wake-up"
        )
        for rate in [float(value) for value in args.rates.split(",")]:
            count = int(rate * args.rate_seconds)
            account = account_with_outbox(f"rate-{int(rate)}", rate, count)
            run(account, count)
            sent = Message.objects.filter(account=account, status="sent")
            span = sent.aggregate(first=Min("sent_at"), last=Max("sent_at"))
            start = span["first"] + (span["last"] - span["first"]) * 0 + _seconds(5)
            end = span["last"] - _seconds(5)
            inside = sent.filter(sent_at__gte=start, sent_at__lt=end).count()
            measured = inside / (end - start).total_seconds()
            print(
                f"rate limit {rate:.0f}/s across {args.workers} workers: measured {measured:.1f}/s over the "
                f"steady {(end - start).total_seconds():.0f} s ({(measured - rate) / rate * 100:+.2f}%); "
                f"{sent.count()} sent in all"
            )
    finally:
        stop(workers)
    return 0


def _seconds(value: float):
    import datetime as dt

    return dt.timedelta(seconds=value)


if __name__ == "__main__":
    sys.exit(main())
