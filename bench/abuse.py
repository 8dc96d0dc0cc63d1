"""Abuse of a public write key: a flood of ``Form Submitted`` events for random phone numbers from
one web key, beside a well-behaved source, through the real processes.

Builds ``cdp_bench_abuse`` (dropped and recreated) and publishes the journey an SMS pump aims at:

    trigger (Form Submitted) → send SMS (sandbox account)

then starts daphne, Celery workers (ingest; engine and matching; dispatch; default and segments) and
beat, in production mode with Redis for the rate limits. Three phases:

1. idle: the well-behaved source alone (a server key, ``--good-rate`` /v1/track calls per second,
   ``--idle-seconds``);
2. flood: the same, while ``--flood-rate`` requests per second (200) of ``Form Submitted`` with a
   random mobile number in ``context.traits.phone`` go to the web key from one address for
   ``--flood-seconds`` (60);
3. drain: until the inbox is empty and the engine has nothing due, then the counts.

Prints what the flood got (200s, 429s), the SMS in the outbox by status against the caps
(``PHONE_DAILY_SEND_CAP`` per number and day; web phones are unverified, so none of the flood's
customers has a number to send to), the well-behaved source's /v1/track p50/p99 idle and during the
flood (and their ratio), and whether every one of its events was stored.

    .venv/bin/python bench/abuse.py [--flood-rate 200] [--flood-seconds 60] [--good-rate 50]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
from benchdb import database_fresh

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cdp.keys import keys_generate  # noqa: E402 (after the project is on the path)

BIN = Path(sys.executable).parent
DATABASE = "cdp_bench_abuse"
SERVER = "postgres://postgres@127.0.0.1:5432"
BROKER_URL = "redis://127.0.0.1:6379/15"
REDIS_URL = "redis://127.0.0.1:6379/5"
WORKERS = (
    ("ingest", "ingest"),
    ("engine", "engine,matching"),
    ("dispatch", "dispatch"),
    ("bg", "default,segments"),
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def production_env(log_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_ALLOW_ASYNC_UNSAFE", "DEBUG"}}
    env.update(
        DJANGO_ENV="production",
        DJANGO_SETTINGS_MODULE="cdp.settings",
        SECRET_KEY=secrets.token_urlsafe(48),
        **keys_generate(),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        DATABASE_URL=f"{SERVER}/{DATABASE}",
        CELERY_BROKER_URL=BROKER_URL,
        REDIS_URL=REDIS_URL,
        HEARTBEAT_INTERVAL_SECONDS="3600",
        CDP_VAR_DIR=str(log_dir / "var"),
        PYTHONUNBUFFERED="1",
    )
    return env


def setup(env: dict) -> dict:
    """Sources, the SMS account and template, the journey; returns the write keys and ids."""
    code = """
import json
import django
django.setup()
from cdp.services import source_create
from connectors.accounts import account_create
from connectors.services import template_save
from journeys.services import journey_publish, journey_save

web = source_create(name="官网", kind="web")
server = source_create(name="ERP", kind="server")
account = account_create(kind="sandbox_sms", name="短信沙箱", values={"callback_secret": "bench-secret-1"},
                         rate_per_second=1000)
template_save(key="signup-sms", name="报名短信", channel="sms", body={"template_code": "SMS_1", "params": {}},
              known_traits=set(), allow_unknown=True)
graph = {
    "nodes": [
        {"id": "t1", "type": "event_trigger", "config": {"event": "Form Submitted"}},
        {"id": "s1", "type": "send", "config": {"account": account.pk, "template": "signup-sms",
                                               "ends": ["delivered", "failed", "no_response"]}},
    ],
    "edges": [{"id": "e1", "source": "t1", "sourceHandle": None, "target": "s1"}],
}
journey = journey_save(name="直播报名短信", actor=None, draft_graph=graph)
journey_publish(journey=journey, actor=None)
print(json.dumps({"web": web.write_key, "server": server.write_key, "server_id": server.pk, "web_id": web.pk}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


class Processes:
    def __init__(self, env: dict, log_dir: Path):
        self.env, self.log_dir, self.running = env, log_dir, {}

    def start(self, name: str, *args: str) -> None:
        with open(self.log_dir / f"{name}.log", "wb") as log:
            self.running[name] = subprocess.Popen(
                args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop_all(self) -> None:
        for process in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.running.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


def basic(key: str) -> dict:
    return {
        "Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode(),
        "Content-Type": "application/json",
    }


class Connection:
    def __init__(self, port: int):
        self.port, self.connection = port, None

    def post(self, path: str, body: bytes, headers: dict) -> int:
        for attempt in range(3):
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.connection.request("POST", path, body, headers)
                response = self.connection.getresponse()
                response.read()
                return response.status
            except (http.client.HTTPException, OSError):
                self.connection.close()
                self.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def machine_busy_cores(seconds: float = 1.0) -> float:
    def busy() -> float:
        fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")

    before, start = busy(), time.perf_counter()
    time.sleep(seconds)
    return (busy() - before) / (time.perf_counter() - start)


def paced(rate: float, seconds: float, send, threads: int, stop: threading.Event | None = None) -> None:
    """Calls ``send(i)`` ``rate`` times a second for ``seconds``, from ``threads`` threads."""
    total = int(rate * seconds)
    start = time.perf_counter()

    def one(index: int) -> None:
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        send(index)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(total)))


def good_sender(port: int, key: str, sent: list, latencies: list, statuses: list):
    local = threading.local()

    def send(index: int) -> None:
        if not hasattr(local, "connection"):
            local.connection = Connection(port)
        message_id = f"good-{uuid.uuid4().hex}"
        body = {
            "userId": f"member-{index % 500}",
            "event": "Order Completed",
            "messageId": message_id,
            "properties": {"revenue": 99},
        }
        started = time.perf_counter()
        status = local.connection.post("/v1/track", json.dumps(body).encode(), basic(key))
        latencies.append((time.perf_counter() - started) * 1000)
        statuses.append(status)
        if status == 200:
            sent.append(message_id)

    return send


def flood_sender(port: int, key: str, statuses: list, rng: random.Random):
    local = threading.local()
    lock = threading.Lock()

    def send(_index: int) -> None:
        if not hasattr(local, "connection"):
            local.connection = Connection(port)
        with lock:
            phone = rng.choice(("138", "139", "150", "186", "177")) + f"{rng.randrange(10**8):08d}"
        body = {
            "anonymousId": uuid.uuid4().hex,
            "event": "Form Submitted",
            "properties": {"form": "live-signup"},
            "context": {"traits": {"phone": phone}},
        }
        statuses.append(local.connection.post("/v1/track", json.dumps(body).encode(), basic(key)))

    return send


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def wait_settled(db: psycopg.Connection, timeout: float) -> float:
    """Until the inbox is empty, every customer with a ``Form Submitted`` has entered the journey, and
    every entry has its SMS in the outbox, none of them still queued; returns the wait."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        pending, submitters, entries, messages, queued = db.execute(
            """
            SELECT (SELECT count(*) FROM cdp_ingestbatch),
                   (SELECT count(DISTINCT customer_id) FROM cdp_event WHERE name = 'Form Submitted'),
                   (SELECT count(*) FROM journeys_enrollment),
                   (SELECT count(*) FROM connectors_message),
                   (SELECT count(*) FROM connectors_message WHERE status IN ('queued', 'sending'))
            """
        ).fetchone()
        if pending == 0 and submitters == entries == messages and queued == 0:
            return time.perf_counter() - start
        time.sleep(2)
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood-rate", type=float, default=200.0, help="flood requests per second")
    parser.add_argument("--flood-seconds", type=float, default=60.0)
    parser.add_argument("--good-rate", type=float, default=50.0, help="the well-behaved source's calls/s")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--settle-timeout", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    log_dir = Path(tempfile.mkdtemp(prefix="abuse-bench-"))
    env = production_env(log_dir)
    print(f"[setup] database {DATABASE} (dropped and recreated), logs in {log_dir}", flush=True)
    database_fresh(SERVER, DATABASE)
    import redis

    for url in (BROKER_URL, REDIS_URL):
        redis.Redis.from_url(url).flushdb()
    keys = setup(env)
    load = Path("/proc/loadavg").read_text().split()[:3]
    busy = machine_busy_cores()
    print(f"[setup] before start: load average {' '.join(load)}, busy {busy:.2f} of {os.cpu_count()} cores")

    processes = Processes(env, log_dir)
    port = free_port()
    figures: dict = {"load_average_before": load, "busy_cores_before": round(busy, 2)}
    try:
        processes.start(
            "daphne", str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "cdp.asgi:application"
        )
        for name, queues in WORKERS:
            processes.start(
                f"worker-{name}", str(BIN / "celery"), "-A", "cdp", "worker", "-Q", queues, "--concurrency", "1",
                "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "-l", "warning",
            )  # fmt: skip
        processes.start(
            "beat", str(BIN / "celery"), "-A", "cdp", "beat", "-l", "warning", "-s", str(log_dir / "beat")
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("daphne did not listen within 60 s") from None
                time.sleep(0.3)
        time.sleep(3)  # the workers connect to the broker

        good_sent: list[str] = []
        idle_latencies: list[float] = []
        idle_statuses: list[int] = []
        print(
            f"[idle] well-behaved server source at {args.good_rate:.0f}/s for {args.idle_seconds:.0f} s",
            flush=True,
        )
        paced(
            args.good_rate,
            args.idle_seconds,
            good_sender(port, keys["server"], good_sent, idle_latencies, idle_statuses),
            4,
        )

        flood_latencies: list[float] = []
        flood_good_statuses: list[int] = []
        flood_statuses: list[int] = []
        print(
            f"[flood] {args.flood_rate:.0f} requests/s of Form Submitted from one web key for "
            f"{args.flood_seconds:.0f} s, with the well-behaved source beside it",
            flush=True,
        )
        rng = random.Random(args.seed)
        attacker = threading.Thread(
            target=paced,
            args=(
                args.flood_rate,
                args.flood_seconds,
                flood_sender(port, keys["web"], flood_statuses, rng),
                16,
            ),
        )
        flood_started = time.perf_counter()
        attacker.start()
        paced(
            args.good_rate,
            args.flood_seconds,
            good_sender(port, keys["server"], good_sent, flood_latencies, flood_good_statuses),
            4,
        )
        attacker.join()
        flood_wall = time.perf_counter() - flood_started

        db = psycopg.connect(f"{SERVER}/{DATABASE}", autocommit=True)
        settled = wait_settled(db, args.settle_timeout)
        stored = db.execute(
            "SELECT count(DISTINCT message_id) FROM cdp_event WHERE source_id = %s AND message_id = ANY(%s)",
            [keys["server_id"], good_sent],
        ).fetchone()[0]
        sms = dict(
            db.execute(
                "SELECT status, count(*) FROM connectors_message WHERE channel = 'sms' GROUP BY status"
            )
        )
        enrolled = db.execute("SELECT count(*) FROM journeys_enrollment").fetchone()[0]
        web_phones = db.execute("SELECT count(*) FROM cdp_identity WHERE type = 'phone'").fetchone()[0]
        per_number = db.execute(
            "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM connectors_message"
            " WHERE channel = 'sms' AND status NOT IN ('skipped', 'queued') GROUP BY recipient) AS counts"
        ).fetchone()[0]
        db.close()

        accepted = flood_statuses.count(200)
        limited = flood_statuses.count(429)
        other = len(flood_statuses) - accepted - limited
        flood_address_rate, flood_burst = 20, 100  # TRACKING_ADDRESS_RATE's default, and its burst
        allowed = flood_burst + flood_address_rate * flood_wall
        skipped_no_phone = sms.get("skipped", 0)
        queued_or_sent = sum(count for status, count in sms.items() if status != "skipped")
        idle_p50, idle_p99 = percentile(idle_latencies, 0.5), percentile(idle_latencies, 0.99)
        flood_p50, flood_p99 = percentile(flood_latencies, 0.5), percentile(flood_latencies, 0.99)
        good_refused = sum(1 for status in idle_statuses + flood_good_statuses if status != 200)
        figures.update(
            flood_requests=len(flood_statuses),
            flood_wall_seconds=round(flood_wall, 1),
            flood_accepted=accepted,
            flood_429=limited,
            flood_other_statuses=other,
            flood_accepted_bound=int(allowed),
            journey_enrollments=enrolled,
            phone_identities=web_phones,
            sms_by_status=sms,
            sms_queued_or_sent=queued_or_sent,
            sms_most_to_one_number=per_number,
            good_sent=len(good_sent),
            good_refused=good_refused,
            good_stored=stored,
            good_idle_p50_ms=round(idle_p50, 1),
            good_idle_p99_ms=round(idle_p99, 1),
            good_flood_p50_ms=round(flood_p50, 1),
            good_flood_p99_ms=round(flood_p99, 1),
            p99_ratio_flood_to_idle=round(flood_p99 / idle_p99, 2),
            settled_seconds=round(settled, 1),
        )
        print(
            f"[flood] {len(flood_statuses)} requests in {flood_wall:.1f} s ({len(flood_statuses) / flood_wall:.0f}/s):"
            f" {accepted} accepted (bound "
            f"{int(allowed)}: burst {flood_burst} + {flood_address_rate}/s), {limited} refused with 429, "
            f"{other} other"
        )
        print(
            f"[sms] outbox: {sms or 'empty'}; queued or sent {queued_or_sent} (skipped, no verified number: "
            f"{skipped_no_phone}); most to one number {per_number} (cap 10/day); "
            f"{enrolled} journey entries; phone identities {web_phones}"
        )
        print(
            f"[good] /v1/track p50/p99 idle {idle_p50:.1f}/{idle_p99:.1f} ms, during the flood "
            f"{flood_p50:.1f}/{flood_p99:.1f} ms (p99 ratio {flood_p99 / idle_p99:.2f}); "
            f"{len(good_sent)} accepted, {good_refused} refused, {stored} stored"
            f" ({'nothing lost' if stored == len(good_sent) else 'LOST ' + str(len(good_sent) - stored)})"
        )
        print(f"[drain] settled {settled:.1f} s after the flood")
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False))
        ok = stored == len(good_sent) and good_refused == 0 and flood_p99 < 50 and accepted <= allowed
        return 0 if ok else 1
    finally:
        processes.stop_all()


if __name__ == "__main__":
    sys.exit(main())
