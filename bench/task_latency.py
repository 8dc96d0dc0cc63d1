"""How long tasks wait in their queues under `make run`'s own layout, from a fresh clone, under load.

Clones this checkout's HEAD into a temporary folder and runs `make run` there (its embedded
PostgreSQL and Redis: DATABASE_URL, CELERY_BROKER_URL and REDIS_URL are removed from the
environment; CDP_VAR_DIR and CDP_PORT point into the clone), so the quickstart's workers, beat and
daphne run as a user gets them. Then, through the product only:

- an API token for the demo admin, the demo's sandbox WeChat account set to refuse every send
  (``error_rate`` 1, ``error_code`` 43004), the write key of the demo's server source;
- a journey made and published over the API: API trigger → WeChat template → on ``failed`` an SMS
  on the demo's sandbox SMS account → end;
- for ``--minutes`` (30), a steady load (``bench/journey_load.py``): ``--entries`` customers a
  second (20) enrolled over ``POST /api/journeys/ID/enroll/`` and ``--events`` tracked events a
  second (100) in ``/v1/batch`` requests of 10, paced, to 127.0.0.1 only.

Every minute it prints each queue's enqueue→start wait (p50, p99, max: what the workers record in
the broker's ``cdp:task-waits`` stream), the broker's backlog (waiting tasks per queue, the most
seen in the minute, sampled every 5 s, and the oldest one's age) and the machine's load average.
At the end: the same over the whole run beside the target (p99 ≤ 1 s per queue, backlog flat),
what the load achieved, and the fallback: for the customers entered, the time from entry to their
SMS delivered (p50, p95), and how many were still on their way.

``--broker-url redis://127.0.0.1:6379/N`` runs the same with that Redis (the machine's) as broker,
cache and channel layer (CELERY_BROKER_URL and REDIS_URL set to it; its database N is emptied
first): the reference the embedded Redis is compared with. ``--checkout PATH`` reuses a clone whose
venv and canvas build are there (a previous ``--keep``), which saves minutes while developing.

    .venv/bin/python bench/task_latency.py [--minutes 30] [--entries 20] [--events 100]
        [--broker-url redis://127.0.0.1:6379/N] [--checkout PATH] [--keep] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import psycopg
import redis
from journey_load import Load, fallback_graph, percentile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cdp.celery import QUEUES  # noqa: E402 (after the project is on the path)
from cdp.queues import backlog, waits_since  # noqa: E402

TARGET_P99_MS = 1000
SAMPLE_SECONDS = 5
WECHAT_REFUSAL = "43004"  # WeChat's "the user does not follow the account"

SETUP = """
import json
import django

django.setup()
from django.contrib.auth import get_user_model

from cdp.models import Source
from cdp.services import api_token_rotate
from connectors.accounts import account_update
from connectors.models import ChannelAccount, MessageTemplate

admin = get_user_model().objects.get(username="admin")
wechat = ChannelAccount.objects.filter(kind="sandbox_wechat_template").order_by("pk").first()
account_update(
    account=wechat, name=wechat.name, rate_per_second=wechat.rate_per_second, actor=admin,
    values={**wechat.settings, "error_rate": 1.0, "error_code": "%(code)s"},
)
sms = ChannelAccount.objects.filter(kind="sandbox_sms").order_by("pk").first()
source = Source.objects.filter(kind="server").order_by("pk").first()
print(json.dumps({
    "token": api_token_rotate(user=admin).key,
    "write_key": source.write_key,
    "wechat": wechat.pk,
    "wechat_template": MessageTemplate.objects.get(channel="wechat_template", key="wechat-order").key,
    "sms": sms.pk,
    "sms_template": MessageTemplate.objects.get(channel="sms", key="sms-cart").key,
    "sms_settings": sms.settings,
}))
"""


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http(method: str, url: str, token: str = "", body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Token {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


class QuickstartRun:
    """`make run` in a checkout, in its own process group; stopped as Ctrl-C stops it."""

    def __init__(self, checkout: Path, var_dir: Path, broker_url: str | None):
        self.checkout, self.var_dir, self.broker_url = checkout, var_dir, broker_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = var_dir.parent / f"make-run-{time.strftime('%H%M%S')}.log"
        drop = {"DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE"}
        self.env = {key: value for key, value in os.environ.items() if key not in drop}
        self.env.update(CDP_PORT=str(self.port), CDP_VAR_DIR=str(var_dir))
        # The sandbox providers post their receipts to SITE_URL: this server, not the default port.
        self.env["SITE_URL"] = self.url
        if broker_url:
            self.env.update(CELERY_BROKER_URL=broker_url, REDIS_URL=broker_url)
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float) -> float:
        started = time.monotonic()
        log = open(self.log_path, "wb")  # noqa: SIM115 (closed when the run stops)
        self.process = subprocess.Popen(
            ["make", "run"], cwd=self.checkout, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise SystemExit(f"make run exited early; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(1)  # polling another process: there is no event to wait on
        raise SystemExit(f"/healthz was not green after {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def database_url(self) -> str:
        """The embedded PostgreSQL's address, from its postmaster.pid (port, socket folder)."""
        lines = (self.var_dir / "pgdata" / "postmaster.pid").read_text().splitlines()
        return f"postgres://postgres@{quote(lines[4], safe='')}:{lines[3].strip()}/cdp"

    def broker(self) -> redis.Redis:
        if self.broker_url:
            return redis.Redis.from_url(self.broker_url, socket_timeout=5)
        return redis.Redis(unix_socket_path=str(self.var_dir / "redis" / "redis.sock"), socket_timeout=5)

    def setup(self) -> dict:
        env = {**self.env, "DATABASE_URL": self.database_url(), "DJANGO_SETTINGS_MODULE": "cdp.settings"}
        if not self.broker_url:
            socket_path = self.var_dir / "redis" / "redis.sock"
            env.update(CELERY_BROKER_URL=f"redis+socket://{socket_path}", REDIS_URL=f"unix://{socket_path}")
        answer = subprocess.run(
            [str(self.checkout / ".venv/bin/python"), "-c", SETUP % {"code": WECHAT_REFUSAL}],
            cwd=self.checkout, env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        return json.loads(answer.stdout.strip().splitlines()[-1])


class Monitor:
    """Reads the waits and the backlog from the broker: every 5 s the backlog, every minute a line."""

    def __init__(self, client: redis.Redis):
        self.client = client
        self.minutes: list[dict] = []
        self.waits: dict[str, list[float]] = {queue: [] for queue in QUEUES}
        self.stop = threading.Event()

    def run(self) -> None:
        since = time.time()
        minute_started, samples = since, []
        number = 0
        while not self.stop.wait(SAMPLE_SECONDS):
            samples.append(backlog(QUEUES, client=self.client))
            if time.time() - minute_started < 60:
                continue
            number += 1
            mark = time.time()
            waits = waits_since(since, client=self.client)
            since = mark
            self._line(number, waits, samples)
            minute_started, samples = mark, []
        if samples:
            self._line(number + 1, waits_since(since, client=self.client), samples)

    def _line(self, number: int, waits: dict[str, list[float]], samples: list) -> None:
        row = {"minute": number, "load_average": os.getloadavg()[0], "queues": {}}
        parts = []
        for position, queue in enumerate(QUEUES):
            values = waits.get(queue, [])
            self.waits[queue].extend(values)
            waiting = max(sample[position].waiting for sample in samples)
            ages = [sample[position].oldest_seconds or 0.0 for sample in samples]
            row["queues"][queue] = {
                "tasks": len(values), "p50": percentile(values, 0.5), "p99": percentile(values, 0.99),
                "max": max(values, default=0.0), "waiting": waiting, "oldest_s": max(ages),
                "waiting_last": samples[-1][position].waiting,
            }  # fmt: skip
            figures = row["queues"][queue]
            parts.append(
                f"{queue} {len(values)} tasks {figures['p50']:.0f}/{figures['p99']:.0f}/{figures['max']:.0f} ms"
                f" backlog ≤{waiting}"
            )
        self.minutes.append(row)
        print(f"min {number:>2}  load {row['load_average']:.1f}  " + " | ".join(parts), flush=True)


def fallback_figures(database_url: str, journey_id: int) -> dict:
    with psycopg.connect(database_url) as db:
        rows = db.execute(
            "SELECT e.status, m.status, extract(epoch FROM m.delivered_at - e.enrolled_at)"
            " FROM journeys_enrollment AS e"
            " LEFT JOIN connectors_message AS m ON m.enrollment_id = e.id AND m.channel = 'sms'"
            " WHERE e.journey_id = %s",
            [journey_id],
        ).fetchall()
    delivered = [float(seconds) for _status, message, seconds in rows if message == "delivered"]
    return {
        "entered": len(rows),
        "sms_delivered": len(delivered),
        "sms_failed": sum(1 for _s, message, _t in rows if message == "failed"),
        "no_sms": sum(1 for _s, message, _t in rows if message is None),
        "still_in_journey": sum(1 for status, _m, _t in rows if status == "active"),
        "p50_s": percentile(delivered, 0.5),
        "p95_s": percentile(delivered, 0.95),
        "max_s": max(delivered, default=0.0),
    }


def in_journey(database_url: str, journey_id: int) -> int:
    with psycopg.connect(database_url) as db:
        return db.execute(
            "SELECT count(*) FROM journeys_enrollment WHERE journey_id = %s AND status = 'active'",
            [journey_id],
        ).fetchone()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--entries", type=float, default=20.0, help="journey entries a second")
    parser.add_argument("--events", type=float, default=100.0, help="tracked events a second")
    parser.add_argument("--broker-url", help="a Redis to use instead of the embedded one (its db is emptied)")
    parser.add_argument("--checkout", type=Path, help="reuse this clone (venv and canvas built)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary clone")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    if args.checkout:
        checkout, folder = args.checkout.resolve(), None
    else:
        folder = Path(tempfile.mkdtemp(prefix="task-latency-"))
        checkout = folder / "repo"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(checkout)], check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True
    ).stdout.strip()
    if args.broker_url:
        redis.Redis.from_url(args.broker_url).flushdb()
    run = QuickstartRun(checkout, checkout.parent / "var", args.broker_url)
    print(
        f"commit {commit}, broker {args.broker_url or 'the embedded Redis'}, {os.cpu_count()} cores,"
        f" load average before {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    try:
        print(f"make run: /healthz green after {run.start(timeout=1800):.0f} s ({run.url})", flush=True)
        setup = run.setup()
        graph = fallback_graph(
            wechat_account=setup["wechat"], sms_account=setup["sms"],
            wechat_template=setup["wechat_template"], sms_template=setup["sms_template"],
        )  # fmt: skip
        name = f"任务延迟压测 {time.strftime('%H:%M:%S')}"
        status, journey = http(
            "POST", f"{run.url}/api/journeys/", setup["token"], {"name": name, "draft_graph": graph}
        )
        if status != 201:
            raise SystemExit(f"creating the journey: {status} {journey}")
        status, answer = http("POST", f"{run.url}/api/journeys/{journey['id']}/publish/", setup["token"], {})
        if status not in (200, 201):
            raise SystemExit(f"publishing the journey: {status} {answer}")
        print(
            f"journey {journey['id']} published; SMS account settings {setup['sms_settings']};"
            f" load {args.entries:g} entries/s + {args.events:g} events/s for {args.minutes:g} min",
            flush=True,
        )

        monitor = Monitor(run.broker())
        watcher = threading.Thread(target=monitor.run, daemon=True)
        watcher.start()
        load = Load(
            base_url=run.url, token=setup["token"], journey_id=journey["id"], write_key=setup["write_key"],
            seconds=args.minutes * 60, entries_per_second=args.entries, events_per_second=args.events,
        )  # fmt: skip
        result = load.run()
        database_url = run.database_url()
        deadline = time.monotonic() + 180
        while in_journey(database_url, journey["id"]) and time.monotonic() < deadline:
            time.sleep(2)  # the last customers' receipts arrive
        monitor.stop.set()
        watcher.join()
        fallback = fallback_figures(database_url, journey["id"])
    finally:
        run.stop()
        if folder and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    report(args, commit, monitor, result, fallback)
    return 0


def report(args, commit: str, monitor: Monitor, result, fallback: dict) -> None:
    seconds = result.finished_at - result.started_at
    ok = result.entries_ok()
    batches_ok = [batch for batch in result.batches if batch.status == 200]
    print(
        f"\nload: {len(ok):,} entries answered 2xx ({len(ok) / seconds:.1f}/s) of {len(result.entries):,} sent"
        f" and {result.planned_entries:,} planned, {len(batches_ok) * 10:,} events in {len(batches_ok):,}"
        f" batches answered 200 of {len(result.batches):,} sent and {result.planned_batches:,} planned"
        f" ({len(batches_ok) * 10 / seconds:.0f}/s) over {seconds:.0f} s; enroll p50/p99"
        f" {percentile([e.seconds for e in result.entries], 0.5) * 1000:.0f}/"
        f"{percentile([e.seconds for e in result.entries], 0.99) * 1000:.0f} ms, batch p50/p99"
        f" {percentile([b.seconds for b in result.batches], 0.5) * 1000:.0f}/"
        f"{percentile([b.seconds for b in result.batches], 0.99) * 1000:.0f} ms; most behind schedule"
        f" {max((e.late for e in result.entries), default=0):.1f} s (entries),"
        f" {max((b.late for b in result.batches), default=0):.1f} s (batches)"
    )
    loads = [row["load_average"] for row in monitor.minutes]
    if loads:
        print(
            f"load average (1 min) during the run: min {min(loads):.1f}, mean {sum(loads) / len(loads):.1f}, max {max(loads):.1f}"
        )
    print(
        f"\n{'queue':<10} {'tasks':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>9} {'backlog max':>12} {'at end':>7}  target"
    )
    summary = {}
    for queue in QUEUES:
        values = monitor.waits[queue]
        waiting = [row["queues"][queue]["waiting"] for row in monitor.minutes]
        last = monitor.minutes[-1]["queues"][queue]["waiting_last"] if monitor.minutes else 0
        half = waiting[len(waiting) // 2 :]
        flat = not waiting or max(half) <= max(waiting[: max(len(waiting) // 2, 1)]) + 20
        p99 = percentile(values, 0.99)
        met = (p99 <= TARGET_P99_MS) and flat
        summary[queue] = {"tasks": len(values), "p50": percentile(values, 0.5), "p99": p99,
                          "max": max(values, default=0.0), "backlog_max": max(waiting, default=0),
                          "backlog_end": last, "flat": flat, "met": met}  # fmt: skip
        print(
            f"{queue:<10} {len(values):>8,} {percentile(values, 0.5):>8.0f} {p99:>8.0f}"
            f" {max(values, default=0.0):>9.0f} {max(waiting, default=0):>12,} {last:>7,}"
            f"  {'met' if met else 'NOT met'}{'' if flat else ' (backlog grows)'}"
        )
    print(
        f"\nfallback (entry → SMS delivered), {fallback['entered']:,} entered: p50 {fallback['p50_s']:.1f} s,"
        f" p95 {fallback['p95_s']:.1f} s, max {fallback['max_s']:.1f} s; SMS delivered {fallback['sms_delivered']:,},"
        f" SMS failed {fallback['sms_failed']:,} (the demo account's failure rate), no SMS {fallback['no_sms']:,},"
        f" still in the journey {fallback['still_in_journey']:,}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "commit": commit,
                    "broker": args.broker_url or "embedded",
                    "minutes": monitor.minutes,
                    "summary": summary,
                    "fallback": fallback,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    sys.exit(main())
