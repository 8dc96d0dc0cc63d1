"""Sustained ingestion through /v1/batch against a raw COPY of the same events, in one run.

Creates its own database (``cdp_bench_ingest``, dropped and recreated) on the local PostgreSQL,
migrates it, creates a source, starts the real processes (daphne, Celery ingest workers, broker on
Redis db 9), then:

1. ``/v1/track`` latency on the idle server (sequential requests);
2. bulk phase: all generated events as ``/v1/batch`` requests of 100 from concurrent clients, as
   fast as the server takes them; API events/s, end-to-end events/s (until no batch is pending),
   time from a sampled request's 200 to its events being stored (then checked on the customer's
   profile), and ``/v1/track`` latency measured alongside;
3. paced phase: an open-loop rate (``--paced-rate``: by default the target, 10,000 events/s; ``auto``
   for ``--paced-share`` of the measured end-to-end rate) for ``--paced-seconds``, with the same
   latency figures at that load;
4. ``COPY`` of the bulk events into a plain table shaped like ``cdp_event``, once more into one with
   ``cdp_event``'s indexes, and into a twin of ``cdp_event`` (all its indexes); the
   ratio pipeline/COPY.

Everything talks to 127.0.0.1 only. The processes started here are stopped at the end, also on
Ctrl-C or an error; the bench database is left in place for inspection (``--drop-at-end`` drops it).
Celery beat runs too (``--no-beat`` leaves it out): its 5 s ingest sweep is what picks up batches a
per-batch task skipped. When the server runs without autovacuum, the script runs ANALYZE on its own
database every ``--analyze-every`` seconds instead. The CPU line splits the machine's busy time
between the processes started here, PostgreSQL and everything else (other work on the machine
lowers the figures; the script says how busy the machine was before it started).

    .venv/bin/python bench/ingest_throughput.py [--events 100000] [--customers 10000] [--clients 8]
        [--daphne 2] [--worker-procs 1] [--concurrency 2] [--paced-rate 10000|auto|0] [--json FILE]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import http.client
import itertools
import json
import os
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cdp.keys import keys_generate  # noqa: E402 (after the project is on the path)

BIN = Path(sys.executable).parent
DB_NAME = "cdp_bench_ingest"
BROKER_URL = "redis://127.0.0.1:6379/9"
CACHE_URL = "redis://127.0.0.1:6379/10"
MAX_ATTEMPTS = 5  # cdp.ingest.MAX_ATTEMPTS: a batch tried this often stays pending for good


# --------------------------------------------------------------------------------------------------
# Event generation


TRACK_MIX = [
    ("Product Viewed", 34),
    ("page", 26),
    ("Products Searched", 9),
    ("Product Added", 12),
    ("Cart Viewed", 6),
    ("Checkout Started", 5),
    ("Order Completed", 4),
    ("Coupon Applied", 2),
    ("Product Shared", 2),
]
CATEGORIES = ["美妆", "母婴", "数码", "服饰", "食品", "家居", "运动", "图书"]
PAGES = [
    ("/", "首页"),
    ("/category", "分类"),
    ("/product", "商品详情"),
    ("/cart", "购物车"),
    ("/checkout", "结算"),
    ("/member", "会员中心"),
    ("/activity/618", "618 大促"),
]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["伟", "芳", "娜", "敏", "静", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明", "超", "秀英"]
USER_AGENTS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 MicroMessenger/8.0.47",
    "Mozilla/5.0 (Linux; Android 14; V2309A) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Safari/605.1",
]
PHONE_PREFIXES = ["138", "139", "135", "136", "137", "150", "151", "158", "186", "187", "188", "157"]


@dataclass
class Person:
    """One synthetic customer: identifiers, devices, and where they are in their story."""

    index: int
    user_id: str | None
    anonymous_ids: list[str]
    phone: str | None
    email: str | None
    first_name: str
    last_name: str
    login_after: list[int]  # per device: events seen before the login happens there
    seen: list[int] = field(default_factory=list)
    identified: list[bool] = field(default_factory=list)


def people_make(count: int, rng: random.Random) -> list[Person]:
    people = []
    for index in range(count):
        devices = 2 if rng.random() < 0.15 else 1
        known = rng.random() < 0.75
        people.append(
            Person(
                index=index,
                user_id=f"u{index:07d}" if known else None,
                anonymous_ids=[str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(devices)],
                phone=(rng.choice(PHONE_PREFIXES) + f"{rng.randrange(10**8):08d}")
                if known and rng.random() < 0.45
                else None,
                email=f"user{index}@example{rng.randrange(5)}.com" if known and rng.random() < 0.5 else None,
                first_name=rng.choice(GIVEN),
                last_name=rng.choice(SURNAMES),
                login_after=[rng.randrange(0, 4) for _ in range(devices)],
                seen=[0] * devices,
                identified=[False] * devices,
            )
        )
    return people


def _context(person: Person, device: int, rng: random.Random, with_traits: bool) -> dict:
    path, title = rng.choice(PAGES)
    context = {
        "library": {"name": "analytics.js", "version": "5.2.0"},
        "ip": f"10.{person.index % 250}.{device}.{person.index % 200 + 1}",
        "userAgent": USER_AGENTS[(person.index + device) % len(USER_AGENTS)],
        "locale": "zh-CN",
        "timezone": "Asia/Shanghai",
        "page": {
            "path": path,
            "url": f"https://shop.example.cn{path}",
            "title": title,
            "referrer": "https://www.baidu.com/" if rng.random() < 0.3 else "",
        },
        "campaign": {"source": "wechat", "medium": "social", "name": "spring"} if rng.random() < 0.2 else {},
    }
    if with_traits:
        traits = {}
        if person.phone:
            traits["phone"] = person.phone
        if person.email:
            traits["email"] = person.email
        if traits:
            context["traits"] = traits
    return context


def event_next(person: Person, when: dt.datetime, rng: random.Random) -> dict:
    """The person's next event: anonymous until the login on that device, an identify at the login."""
    device = 0 if len(person.anonymous_ids) == 1 or rng.random() < 0.75 else 1
    person.seen[device] += 1
    logged_in = person.user_id is not None and person.seen[device] > person.login_after[device]
    message = {
        "anonymousId": person.anonymous_ids[device],
        "messageId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "timestamp": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    if logged_in:
        message["userId"] = person.user_id
    if logged_in and not person.identified[device]:
        person.identified[device] = True
        traits = {"name": person.last_name + person.first_name, "firstName": person.first_name}
        traits["lastName"] = person.last_name
        if person.phone:
            traits["phone"] = person.phone
        if person.email:
            traits["email"] = person.email
        traits["memberLevel"] = rng.choice(["普通", "银卡", "金卡"])
        message.update(type="identify", traits=traits, context=_context(person, device, rng, False))
        return message
    name = rng.choices([name for name, _ in TRACK_MIX], [weight for _, weight in TRACK_MIX])[0]
    context = _context(person, device, rng, logged_in and rng.random() < 0.3)
    if name == "page":
        message.update(
            type="page",
            name=context["page"]["title"],
            properties={"path": context["page"]["path"], "url": context["page"]["url"]},
            context=context,
        )
        return message
    sku = rng.randrange(1, 5000)
    price = round(rng.uniform(9, 1999), 2)
    properties: dict = {
        "product_id": f"P{sku:05d}",
        "sku": f"SKU-{sku:05d}",
        "category": CATEGORIES[sku % len(CATEGORIES)],
        "name": f"商品 {sku}",
        "price": price,
    }
    if name == "Products Searched":
        properties = {"query": rng.choice(["面霜", "奶粉", "耳机", "跑鞋", "咖啡", "台灯"])}
    elif name == "Order Completed":
        items = rng.randrange(1, 4)
        properties = {
            "order_id": f"O{rng.getrandbits(40):x}",
            "revenue": round(price * items, 2),
            "currency": "CNY",
            "products": [
                {"product_id": f"P{rng.randrange(1, 5000):05d}", "quantity": 1} for _ in range(items)
            ],
        }
    elif name == "Coupon Applied":
        properties = {"coupon_id": f"C{rng.randrange(100)}", "discount": rng.choice([5, 10, 20])}
    message.update(type="track", event=name, properties=properties, context=context)
    return message


def events_make(
    people: list[Person],
    weights: list[float],
    count: int,
    start: dt.datetime,
    span: float,
    rng: random.Random,
) -> list[dict]:
    """``count`` events over ``span`` seconds from ``start``, in time order, people chosen by weight."""
    chosen = rng.choices(people, cum_weights=weights, k=count)
    moments = sorted(rng.uniform(0, span) for _ in range(count))
    return [
        event_next(person, start + dt.timedelta(seconds=offset), rng)
        for person, offset in zip(chosen, moments, strict=True)
    ]


def weights_make(count: int, rng: random.Random) -> list[float]:
    """Cumulative weights: a few customers are much busier than most (log-normal activity)."""
    return list(itertools.accumulate(rng.lognormvariate(0, 1.0) for _ in range(count)))


@dataclass
class Request:
    """One /v1/batch request: the encoded body (sentAt goes in at send time) and one sampled event."""

    prefix: bytes
    count: int
    sample: tuple[str, str, str]  # identity type, value, messageId of the request's last event


def requests_make(events: list[dict], size: int) -> list[Request]:
    out = []
    for start in range(0, len(events), size):
        chunk = events[start : start + size]
        body = json.dumps({"batch": chunk}, ensure_ascii=False, separators=(",", ":"))
        last = chunk[-1]
        sample = (
            ("user_id", last["userId"], last["messageId"])
            if last.get("userId")
            else ("anonymous_id", last["anonymousId"], last["messageId"])
        )
        out.append(Request(prefix=(body[:-1] + ',"sentAt":"').encode(), count=len(chunk), sample=sample))
    return out


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------------------------------
# Processes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Processes:
    """Starts commands in their own sessions; stops each session (children included)."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env = env
        self.log_dir = log_dir
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 (the child keeps it open)
        process = subprocess.Popen(
            args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.running[name] = process
        return process

    def check(self) -> None:
        for name, process in self.running.items():
            if process.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")

    def stop_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.running.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            # Whatever is left of the session (forked children), also when the leader is gone.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        self.running.clear()


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent on anything but idle and I/O wait since boot."""
    with open("/proc/stat") as handle:
        values = [int(value) for value in handle.readline().split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def cpu_seconds_by_group(groups: dict[str, int], probe_pids: set[int] = frozenset()) -> dict[str, float]:
    """CPU seconds (user + system) so far: of every process in each started session, of this one, of
    postgres (split by what can be told apart), and of the whole machine.

    Children's reaped time counts too: the postmaster's covers the backends of closed connections,
    which (with connections opened per request and per task) do most of the bench database's work;
    they cannot be told apart from other databases' closed connections."""
    tick = os.sysconf("SC_CLK_TCK")
    by_session = {session: name for name, session in groups.items()}
    totals: dict[str, float] = dict.fromkeys(
        [
            *groups,
            "bench client",
            "pg bench probes",
            "pg bench db",
            "pg closed conns + server",
            "pg other dbs",
        ],
        0.0,
    )
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                raw = handle.read()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        session = int(fields[3])
        seconds = sum(int(value) for value in fields[11:15]) / tick  # utime stime cutime cstime
        if int(entry) == me:
            totals["bench client"] += seconds
        elif int(entry) in probe_pids:
            totals["pg bench probes"] += seconds
        elif session in by_session:
            totals[by_session[session]] += seconds
        elif comm == "postgres" or comm.startswith("postgres"):
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    title = handle.read().decode(errors="replace")
            except OSError:
                continue
            if f" {DB_NAME} " in title:
                totals["pg bench db"] += seconds
            elif "127.0.0.1(" in title or "[local]" in title:
                totals["pg other dbs"] += seconds
            else:
                totals["pg closed conns + server"] += seconds
    totals["machine busy"] = machine_busy_seconds()
    return totals


def cpu_split(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Per kind (daphne, worker, beat, ...) the CPU seconds between two snapshots, and what was not ours."""
    out: dict[str, float] = {}
    for name in before:
        if name == "machine busy":
            continue
        kind = name.rstrip("0123456789")
        out[kind] = out.get(kind, 0.0) + max(0.0, after[name] - before[name])
    busy = after["machine busy"] - before["machine busy"]
    out["other processes"] = max(
        0.0, busy - sum(value for kind, value in out.items() if kind != "pg other dbs")
    )
    out["machine busy"] = busy
    return out


# --------------------------------------------------------------------------------------------------
# HTTP


class Client:
    """One keep-alive connection to one daphne."""

    def __init__(self, port: int, write_key: str):
        self.port = port
        self.connection: http.client.HTTPConnection | None = None
        auth = base64.b64encode(f"{write_key}:".encode()).decode()
        self.headers = {"Authorization": f"Basic {auth}", "Content-Type": "application/json"}

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        for attempt in range(3):
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            try:
                self.connection.request("POST", path, body, self.headers)
                response = self.connection.getresponse()
                data = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                return response.status, data
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt == 2:
                    raise
                time.sleep(0.05)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]

    return {
        "n": len(ordered),
        "p50": at(0.50),
        "p95": at(0.95),
        "p99": at(0.99),
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


def track_body(person: Person, rng: random.Random) -> bytes:
    """A single track call (what a server-side library sends per event)."""
    message = event_next(person, dt.datetime.now(dt.UTC), rng)
    while message["type"] != "track":
        message = event_next(person, dt.datetime.now(dt.UTC), rng)
    message["sentAt"] = now_iso()
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


class TrackProbe(threading.Thread):
    """Sequential single /v1/track requests (one connection), recording each one's latency in ms."""

    def __init__(self, port: int, write_key: str, people: list[Person], limit: int | None, seed: int):
        super().__init__(daemon=True)
        self.client = Client(port, write_key)
        self.people = people
        self.limit = limit
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.failures = 0

    def run(self) -> None:
        while not self.stop.is_set() and (self.limit is None or len(self.latencies) < self.limit):
            person = self.rng.choice(self.people)
            body = track_body(person, self.rng)
            started = time.perf_counter()
            try:
                status, _ = self.client.post("/v1/track", body)
            except (http.client.HTTPException, OSError):
                status = 0
            elapsed = (time.perf_counter() - started) * 1000
            if status == 200:
                self.latencies.append(elapsed)
            else:
                self.failures += 1
            if self.limit is None:
                time.sleep(0.02)  # under load: about one probe per 20 ms plus its own latency
        self.client.close()


class VisibilityProbe(threading.Thread):
    """When sampled events are stored: polls their ``cdp_eventkey`` rows, which ``_process`` writes in
    the same transaction as the ``cdp_event`` rows (so both become visible at the same commit), by
    the unique index; an identity -> customer -> events join per poll would cost the database more
    than the pipeline's own queries. At the end, ``on_profile`` checks the samples the way a profile
    reads them (identity -> customer -> that customer's events)."""

    def __init__(self, dsn: str, source_id: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.dsn = dsn
        self.source_id = source_id
        self.interval = interval
        self.lock = threading.Lock()
        self.waiting: dict[str, float] = {}
        self.samples: list[tuple[str, str, str]] = []
        self.delays: list[float] = []
        self.stop = threading.Event()
        self.backend_pid: int | None = None

    def add(self, sample: tuple[str, str, str], answered_at: float) -> None:
        with self.lock:
            self.waiting[sample[2]] = answered_at
            self.samples.append(sample)

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as connection:
            self.backend_pid = connection.info.backend_pid
            # Not prepared: a generic plan made while the table was small scans all of it (once per
            # waiting sample) and costs the database more CPU than the pipeline itself.
            connection.prepare_threshold = None
            connection.execute("SET enable_seqscan = off")
            while not self.stop.is_set():
                with self.lock:
                    waiting = list(self.waiting)
                if waiting:
                    rows = connection.execute(
                        "SELECT message_id FROM cdp_eventkey WHERE source_id = %s AND message_id = ANY(%s)",
                        [self.source_id, waiting],
                    ).fetchall()
                    seen_at = time.perf_counter()
                    with self.lock:
                        for (message_id,) in rows:
                            answered_at = self.waiting.pop(message_id, None)
                            if answered_at is not None:
                                self.delays.append((seen_at - answered_at) * 1000)
                self.stop.wait(self.interval)

    def finish(self, timeout: float) -> int:
        """Waits for the remaining samples (up to ``timeout``); returns how many never showed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not self.waiting:
                    break
            time.sleep(0.1)
        self.stop.set()
        self.join(5)
        return len(self.waiting)

    def on_profile(self, connection: psycopg.Connection) -> int:
        """How many samples a profile shows: identity -> customer -> that customer's events."""
        if not self.samples:
            return 0
        types, values, ids = (list(column) for column in zip(*self.samples, strict=True))
        with connection.transaction():
            connection.execute("SET LOCAL enable_hashjoin = off")
            connection.execute("SET LOCAL enable_mergejoin = off")
            return connection.execute(
                """
                SELECT count(*) FROM unnest(%s::text[], %s::text[], %s::text[]) AS s(type, value, message_id)
                JOIN cdp_identity i ON i.type = s.type AND i.value = s.value
                JOIN cdp_event e ON e.customer_id = i.customer_id AND e.message_id = s.message_id
                """,
                [types, values, ids],
            ).fetchone()[0]


class Analyzer(threading.Thread):
    """Stands in for autovacuum's ANALYZE when the server runs without autovacuum (as this one may):
    without statistics the planner misjudges the growing tables."""

    def __init__(self, dsn: str, every: float):
        super().__init__(daemon=True)
        self.dsn = dsn
        self.every = every
        self.stop = threading.Event()
        self.runs = 0
        self.backend_pid: int | None = None

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as connection:
            self.backend_pid = connection.info.backend_pid
            while not self.stop.wait(self.every):
                connection.execute("ANALYZE")
                self.runs += 1


@dataclass
class SendResult:
    started: float = 0.0
    finished: float = 0.0
    events: int = 0
    requests: int = 0
    failures: int = 0
    latencies: list[float] = field(default_factory=list)
    lag: list[float] = field(default_factory=list)  # paced: how late each request went out (ms)


def send_all(
    requests: list[Request],
    ports: list[int],
    write_key: str,
    clients: int,
    visibility: VisibilityProbe,
    sample_every: int,
    rate: float | None = None,
    deadline: float | None = None,
) -> SendResult:
    """Sends the requests from ``clients`` threads; open-loop at ``rate`` events/s when given."""
    result = SendResult()
    lock = threading.Lock()
    counter = itertools.count()
    result.started = time.perf_counter()
    interval = (requests[0].count / rate) if rate else 0.0

    def worker(number: int) -> None:
        client = Client(ports[number % len(ports)], write_key)
        latencies, lag, events, done, failures = [], [], 0, 0, 0
        while True:
            index = next(counter)
            if index >= len(requests) or (deadline is not None and time.perf_counter() > deadline):
                break
            request = requests[index]
            if rate:
                due = result.started + index * interval
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                else:
                    lag.append(-wait * 1000)
            body = request.prefix + now_iso().encode() + b'"}'
            sent = time.perf_counter()
            try:
                status, _ = client.post("/v1/batch", body)
            except (http.client.HTTPException, OSError):
                status = 0
            answered = time.perf_counter()
            if status != 200:
                failures += 1
                continue
            latencies.append((answered - sent) * 1000)
            events += request.count
            done += 1
            if index % sample_every == 0:
                visibility.add(request.sample, answered)
        client.close()
        with lock:
            result.latencies.extend(latencies)
            result.lag.extend(lag)
            result.events += events
            result.requests += done
            result.failures += failures
            result.finished = max(result.finished, time.perf_counter())

    threads = [threading.Thread(target=worker, args=(number,), daemon=True) for number in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


def pending_batches(connection: psycopg.Connection) -> tuple[int, int]:
    row = connection.execute(
        "SELECT count(*) FILTER (WHERE attempts < %s), count(*) FILTER (WHERE attempts >= %s) "
        "FROM cdp_ingestbatch",
        [MAX_ATTEMPTS, MAX_ATTEMPTS],
    ).fetchone()
    return row[0], row[1]


def wait_drained(connection: psycopg.Connection, processes: Processes, timeout: float) -> tuple[float, int]:
    """Polls until no batch is pending; returns the moment it saw none and how many remained."""
    deadline = time.perf_counter() + timeout
    while True:
        pending, _ = pending_batches(connection)
        now = time.perf_counter()
        if pending == 0 or now > deadline:
            return now, pending
        processes.check()
        time.sleep(0.05)


# --------------------------------------------------------------------------------------------------
# COPY


COPY_COLUMNS = (
    "customer_id, origin_customer_id, source_id, kind, name, channel, timestamp, received_at, "
    "message_id, properties, context, amount"
)


def copy_tables_create(connection: psycopg.Connection) -> None:
    columns = """
        id bigserial PRIMARY KEY,
        customer_id bigint NOT NULL,
        origin_customer_id bigint NOT NULL,
        source_id bigint,
        kind varchar(10) NOT NULL,
        name varchar(200) NOT NULL,
        channel varchar(20) NOT NULL,
        timestamp timestamptz NOT NULL,
        received_at timestamptz NOT NULL,
        message_id varchar(200) NOT NULL,
        properties jsonb NOT NULL,
        context jsonb NOT NULL,
        amount numeric(14, 2)
    """
    connection.execute("DROP TABLE IF EXISTS bench_copy_plain, bench_copy_indexed, bench_copy_twin")
    connection.execute(f"CREATE TABLE bench_copy_plain ({columns})")
    connection.execute(f"CREATE TABLE bench_copy_indexed ({columns})")
    connection.execute("CREATE INDEX ON bench_copy_indexed (customer_id, timestamp DESC)")
    connection.execute("CREATE INDEX ON bench_copy_indexed (name, timestamp)")
    # cdp_event's twin: its columns, defaults and indexes (it has no foreign keys: decision record 0014).
    connection.execute("CREATE TABLE bench_copy_twin (LIKE cdp_event INCLUDING ALL)")


def copy_rows(events: list[dict], people_index: dict[str, int], source_id: int) -> list[tuple]:
    rows = []
    received = dt.datetime.now(dt.UTC)
    for event in events:
        customer = people_index[event["anonymousId"]]
        kind = event["type"]
        name = event.get("event") or {"page": "page_viewed", "identify": "identify"}[kind]
        properties = event.get("properties") or {}
        revenue = properties.get("revenue")
        rows.append(
            (
                customer,
                customer,
                source_id,
                kind,
                name,
                "web",
                event["timestamp"],
                received,
                event["messageId"],
                json.dumps(properties, ensure_ascii=False),
                json.dumps(event.get("context") or {}, ensure_ascii=False),
                revenue,
            )
        )
    return rows


def copy_run(dsn: str, table: str, rows: list[tuple]) -> float:
    """Seconds for one COPY of the rows (adaptation in psycopg included) and its commit."""
    with psycopg.connect(dsn) as connection:
        started = time.perf_counter()
        with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({COPY_COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        connection.commit()
        return time.perf_counter() - started


# --------------------------------------------------------------------------------------------------
# Main


def fmt_ms(stats: dict[str, float]) -> str:
    if not stats.get("n"):
        return "no samples"
    return (
        f"p50 {stats['p50']:.1f}  p95 {stats['p95']:.1f}  p99 {stats['p99']:.1f}  "
        f"max {stats['max']:.1f} ms  (n={stats['n']})"
    )


def retries_logged(log_dir: Path) -> int:
    """Batch attempts that failed and were tried again, as the ingest workers log them."""
    attempt = re.compile(r"batch \d+ (raced another worker|failed)")
    return sum(len(attempt.findall(path.read_text(errors="replace"))) for path in log_dir.glob("worker*.log"))


def production_env(dsn: str, broker_url: str, cache_url: str, log_dir: Path) -> dict:
    """The environment the app's processes run with in a benchmark: production settings against
    the bench database, broker and cache (the heartbeat out of the way)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_ALLOW_ASYNC_UNSAFE", "DEBUG", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        DJANGO_ENV="production",
        DJANGO_SETTINGS_MODULE="cdp.settings",
        SECRET_KEY=secrets.token_urlsafe(48),
        **keys_generate(),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        DATABASE_URL=dsn,
        CELERY_BROKER_URL=broker_url,
        REDIS_URL=cache_url,
        HEARTBEAT_INTERVAL_SECONDS="3600",
        CDP_VAR_DIR=str(log_dir / "var"),
        PYTHONUNBUFFERED="1",
    )
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events in the bulk phase")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--clients", type=int, default=8, help="concurrent /v1/batch clients")
    parser.add_argument("--daphne", type=int, default=2, help="daphne processes (one port each)")
    parser.add_argument("--worker-procs", type=int, default=1, help="Celery worker processes")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=2,
        help="prefork children per worker process (one per core; while one holds the writer lock, the"
        " other claims and prepares its next group)",
    )
    parser.add_argument(
        "--beat",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run Celery beat too (its 5 s ingest sweep picks up batches a per-batch task skipped)",
    )
    parser.add_argument("--track-requests", type=int, default=1000, help="idle /v1/track probes")
    parser.add_argument(
        "--paced-rate",
        default="10000",
        help="events/s of the paced phase: N (by default the target, 10,000), auto (--paced-share of"
        " end-to-end), or 0 to leave it out",
    )
    parser.add_argument(
        "--paced-share", type=float, default=0.5, help="the auto paced rate's share of end-to-end"
    )
    parser.add_argument("--paced-seconds", type=float, default=20.0)
    parser.add_argument("--send-timeout", type=float, default=150.0, help="stop the bulk sending after this")
    parser.add_argument("--drain-timeout", type=float, default=150.0, help="give up waiting for workers")
    parser.add_argument(
        "--analyze-every",
        type=float,
        default=20.0,
        help="seconds between ANALYZE runs when autovacuum is off",
    )
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="the server (no db name)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-logs", action="store_true", help="keep the process logs folder")
    parser.add_argument("--drop-at-end", action="store_true", help="drop the bench database at the end")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    run_started = time.monotonic()
    admin_dsn = f"{args.pg.rstrip('/')}/postgres"
    dsn = f"{args.pg.rstrip('/')}/{DB_NAME}"
    log_dir = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    env = production_env(dsn, BROKER_URL, CACHE_URL, log_dir)
    processes = Processes(env, log_dir)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    figures: dict = {}
    succeeded = False
    try:
        # ---- database, source, broker
        print(f"[setup] database {DB_NAME} (dropped and recreated), logs in {log_dir}", flush=True)
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {DB_NAME}")
        subprocess.run(
            [str(BIN / "python"), "manage.py", "migrate", "--no-input", "-v", "0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        # A server key: its identifiers merge customers and it is not limited per address, neither of
        # which holds for a web key (README, "Security").
        created = subprocess.run(
            [str(BIN / "python"), "manage.py", "create_source", "--name", "bench", "--kind", "server"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        write_key = created.stdout.strip().splitlines()[-1]
        import redis  # the project's own dependency

        redis.Redis.from_url(BROKER_URL).flushdb()

        # ---- events
        busy_before, wall_mark = machine_busy_seconds(), time.perf_counter()
        time.sleep(1.0)
        idle_busy = (machine_busy_seconds() - busy_before) / (time.perf_counter() - wall_mark)
        figures["machine_busy_before_start_cores"] = idle_busy
        print(
            f"[setup] before start the machine was busy {idle_busy:.2f} of {os.cpu_count()} cores", flush=True
        )
        if idle_busy > 0.3:
            print(
                "[setup] WARNING: other work is running on this machine; the figures will be lower",
                flush=True,
            )
        rng = random.Random(args.seed)
        gen_started = time.perf_counter()
        people = people_make(args.customers, rng)
        weights = weights_make(len(people), rng)
        start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=6)
        events = events_make(people, weights, args.events, start, 6 * 3600 - 120, rng)
        requests = requests_make(events, args.batch_size)
        mean_bytes = sum(len(r.prefix) for r in requests) / max(1, len(requests))
        print(
            f"[setup] {len(events)} events over {len(people)} customers, {len(requests)} requests "
            f"of {args.batch_size} (~{mean_bytes / 1024:.0f} KiB each), generated in "
            f"{time.perf_counter() - gen_started:.1f}s",
            flush=True,
        )

        # ---- processes
        ports = [free_port() for _ in range(args.daphne)]
        for number, port in enumerate(ports):
            processes.start(
                f"daphne{number}",
                str(BIN / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "cdp.asgi:application",
            )
        for number in range(args.worker_procs):
            processes.start(
                f"worker{number}",
                str(BIN / "celery"),
                "-A",
                "cdp",
                "worker",
                "-Q",
                "ingest",
                "--pool",
                "prefork",
                "--concurrency",
                str(args.concurrency),
                "-n",
                f"bench{number}@%h",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "warning",
            )
        if args.beat:
            processes.start(
                "beat",
                str(BIN / "celery"),
                "-A",
                "cdp",
                "beat",
                "-l",
                "warning",
                "--pidfile",
                str(log_dir / "beat.pid"),
                "-s",
                str(log_dir / "beat-schedule"),
            )
        layout = (
            f"daphne x{args.daphne}, celery {args.worker_procs} process(es) x {args.concurrency} prefork "
            f"children, beat {'on' if args.beat else 'off'}, {args.clients} clients"
        )
        print(f"[setup] {layout}", flush=True)
        for port in ports:
            deadline = time.monotonic() + 60
            while True:
                processes.check()
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"daphne on port {port} did not listen within 60s") from None
                    time.sleep(0.2)
        db = psycopg.connect(dsn, autocommit=True)
        source_id = db.execute("SELECT id FROM cdp_source WHERE write_key = %s", [write_key]).fetchone()[0]
        probe_pids = {db.info.backend_pid}
        analyzer = None
        if db.execute("SHOW autovacuum").fetchone()[0] == "off":
            analyzer = Analyzer(dsn, args.analyze_every)
            analyzer.start()
            print(
                f"[setup] autovacuum is off on this server: ANALYZE of {DB_NAME} every "
                f"{args.analyze_every:.0f}s stands in for it",
                flush=True,
            )

        # Warm-up: a few requests through each daphne, processed by the workers (also proves they run).
        warm_people = people_make(50, random.Random(args.seed + 1))
        for person in warm_people:
            person.user_id = None  # anonymous only, away from the bench customers' identities
        warm_rng = random.Random(args.seed + 2)
        for port in ports:
            client = Client(port, write_key)
            for _ in range(20):
                status, body = client.post("/v1/track", track_body(warm_rng.choice(warm_people), warm_rng))
                if status != 200:
                    raise RuntimeError(f"warm-up /v1/track answered {status}: {body[:300]!r}")
            client.close()
        _, left = wait_drained(db, processes, 90)
        if left:
            raise RuntimeError(f"workers did not process the warm-up batches within 90s; see {log_dir}")
        print("[setup] server and workers answer; warm-up done", flush=True)

        # ---- 1. /v1/track on the idle server
        idle = TrackProbe(ports[0], write_key, warm_people, args.track_requests, args.seed + 3)
        idle.start()
        idle.join()
        figures["track_idle_ms"] = percentiles(idle.latencies)
        wait_drained(db, processes, 60)
        print(f"[track idle] {fmt_ms(figures['track_idle_ms'])}", flush=True)

        # ---- 2. bulk
        sample_every = max(1, len(requests) // 400)
        visibility = VisibilityProbe(dsn, source_id)
        visibility.start()
        probe = TrackProbe(ports[0], write_key, warm_people, None, args.seed + 4)
        groups = {name: process.pid for name, process in processes.running.items()}
        while visibility.backend_pid is None or (analyzer is not None and analyzer.backend_pid is None):
            time.sleep(0.01)
        probe_pids |= {visibility.backend_pid} | ({analyzer.backend_pid} if analyzer else set())
        cpu_before = cpu_seconds_by_group(groups, probe_pids)
        wall_before = time.perf_counter()
        events_before = db.execute("SELECT count(*) FROM cdp_event").fetchone()[0]
        probe.start()
        sent = send_all(
            requests,
            ports,
            write_key,
            args.clients,
            visibility,
            sample_every,
            deadline=time.perf_counter() + args.send_timeout,
        )
        probe.stop.set()
        drained_at, left = wait_drained(db, processes, args.drain_timeout)
        cpu_after = cpu_seconds_by_group(groups, probe_pids)
        wall = time.perf_counter() - wall_before
        probe.join(10)
        missing = visibility.finish(10)
        on_profile = visibility.on_profile(db)
        groups_by_kind = cpu_split(cpu_before, cpu_after)
        api_seconds = sent.finished - sent.started
        e2e_seconds = drained_at - sent.started
        stats = db.execute(
            "SELECT (SELECT count(*) FROM cdp_event), (SELECT count(*) FROM cdp_customer),"
            " (SELECT count(*) FROM cdp_customer WHERE merged_into_id IS NOT NULL),"
            " (SELECT count(*) FROM cdp_identity), (SELECT coalesce(sum(attempts), 0) FROM cdp_ingestbatch),"
            " (SELECT count(*) FROM cdp_ingestbatch)"
        ).fetchone()
        figures["bulk"] = {
            "requests": sent.requests,
            "failed_requests": sent.failures,
            "events_accepted": sent.events,
            "api_seconds": api_seconds,
            "api_events_per_s": sent.events / api_seconds if api_seconds else 0,
            "request_ms": percentiles(sent.latencies),
            "end_to_end_seconds": e2e_seconds,
            # Drained: accepted events over the time to the last one stored; else what got stored so far.
            "end_to_end_events_per_s": (
                sent.events / e2e_seconds if not left else (stats[0] - events_before) / e2e_seconds
            ),
            "batches_left_pending": left,
            "visible_after_200_ms": percentiles(visibility.delays),
            "visibility_samples_never_seen": missing,
            "visibility_samples_on_profile": f"{on_profile}/{len(visibility.samples)}",
            "track_during_bulk_ms": percentiles(probe.latencies),
            "events_stored_total": stats[0],
            "customers": stats[1],
            "customers_merged": stats[2],
            "identities": stats[3],
            # Processed requests leave the inbox: their retries are counted in the workers' logs.
            "batch_retries": stats[4] + retries_logged(log_dir),
            "cpu_seconds": {name: round(value, 1) for name, value in groups_by_kind.items()},
            "cpu_wall_seconds": wall,
        }
        bulk = figures["bulk"]
        print(
            f"[bulk] API {bulk['api_events_per_s']:.0f} events/s over {api_seconds:.1f}s; end-to-end "
            f"{bulk['end_to_end_events_per_s']:.0f} events/s over {e2e_seconds:.1f}s; left {left}",
            flush=True,
        )

        # ---- 3. paced
        if args.paced_rate not in ("0", "off", "none"):
            rate = (
                args.paced_share * bulk["end_to_end_events_per_s"]
                if args.paced_rate == "auto"
                else float(args.paced_rate)
            )
            rate = max(rate, float(args.batch_size))
            paced_events = events_make(
                people,
                weights,
                int(rate * args.paced_seconds),
                dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60),
                55,
                rng,
            )
            paced_requests = requests_make(paced_events, args.batch_size)
            visibility = VisibilityProbe(dsn, source_id)
            visibility.start()
            probe = TrackProbe(ports[0], write_key, warm_people, None, args.seed + 5)
            probe.start()
            paced = send_all(
                paced_requests,
                ports,
                write_key,
                args.clients,
                visibility,
                max(1, len(paced_requests) // 400),
                rate=rate,
                deadline=time.perf_counter() + args.paced_seconds * 3,
            )
            probe.stop.set()
            drained_at, left = wait_drained(db, processes, args.drain_timeout)
            probe.join(10)
            missing = visibility.finish(10)
            on_profile = visibility.on_profile(db)
            figures["paced"] = {
                "target_events_per_s": rate,
                "api_events_per_s": paced.events / (paced.finished - paced.started),
                "drain_after_last_200_s": drained_at - paced.finished,
                "batches_left_pending": left,
                "late_sends": len(paced.lag),
                "request_ms": percentiles(paced.latencies),
                "visible_after_200_ms": percentiles(visibility.delays),
                "visibility_samples_never_seen": missing,
                "visibility_samples_on_profile": f"{on_profile}/{len(visibility.samples)}",
                "track_during_paced_ms": percentiles(probe.latencies),
            }
            print(
                f"[paced] {rate:.0f} events/s target, {figures['paced']['api_events_per_s']:.0f} sent; "
                f"visible p95 {figures['paced']['visible_after_200_ms'].get('p95', float('nan')):.0f} ms",
                flush=True,
            )

        if analyzer is not None:
            analyzer.stop.set()
            analyzer.join(30)
        # ---- 4. COPY (workers idle by now)
        people_index = {anon: person.index + 1 for person in people for anon in person.anonymous_ids}
        copy_tables_create(db)
        rows = copy_rows(events, people_index, source_id)
        plain = copy_run(dsn, "bench_copy_plain", rows)
        indexed = copy_run(dsn, "bench_copy_indexed", rows)
        # As in cdp_event, each event goes to the customer the pipeline stored for its anonymousId.
        owners = dict(db.execute("SELECT value, customer_id FROM cdp_identity WHERE type = 'anonymous_id'"))
        twin_rows = [
            (owners[event["anonymousId"]], owners[event["anonymousId"]], *row[2:])
            for event, row in zip(events, rows, strict=True)
            if event["anonymousId"] in owners
        ]
        twin = copy_run(dsn, "bench_copy_twin", twin_rows)
        figures["copy"] = {
            "events": len(rows),
            "plain_events_per_s": len(rows) / plain,
            "indexed_events_per_s": len(rows) / indexed,
            "twin_events_per_s": len(twin_rows) / twin,
        }
        pipeline_rate = bulk["end_to_end_events_per_s"]
        figures["ratio_pipeline_to_copy"] = pipeline_rate / figures["copy"]["plain_events_per_s"]
        figures["ratio_pipeline_to_copy_indexed"] = pipeline_rate / figures["copy"]["indexed_events_per_s"]
        figures["ratio_pipeline_to_copy_twin"] = pipeline_rate / figures["copy"]["twin_events_per_s"]
        figures["layout"] = layout
        db.close()

        # ---- report
        line = "-" * 100
        print(line)
        print(f"layout: {layout}")
        print(
            f"data: {args.events} events, {args.customers} customers, {args.batch_size} events/request; "
            f"stored {bulk['events_stored_total']} events, {bulk['customers']} customers "
            f"({bulk['customers_merged']} merged away), {bulk['identities']} identities, "
            f"{bulk['batch_retries']} batch retries"
        )
        print(line)
        rows_out = [
            ("/v1/track idle (sequential)", fmt_ms(figures["track_idle_ms"])),
            (
                "bulk: API accepted",
                f"{bulk['api_events_per_s']:,.0f} events/s ({bulk['requests'] / api_seconds:.0f} req/s, "
                f"{bulk['failed_requests']} failed)",
            ),
            ("bulk: /v1/batch request", fmt_ms(bulk["request_ms"])),
            (
                "bulk: end-to-end (all processed)",
                f"{pipeline_rate:,.0f} events/s ({e2e_seconds:.1f}s"
                + (
                    f"; NOT drained, {bulk['batches_left_pending']} batches pending: rate of those stored"
                    if bulk["batches_left_pending"]
                    else ""
                )
                + ")",
            ),
            (
                "bulk: 200 -> events stored",
                fmt_ms(bulk["visible_after_200_ms"])
                + f", on profile {bulk['visibility_samples_on_profile']}",
            ),
            ("bulk: /v1/track during bulk", fmt_ms(bulk["track_during_bulk_ms"])),
        ]
        if "paced" in figures:
            paced_figures = figures["paced"]
            rows_out += [
                (
                    "paced: rate",
                    f"{paced_figures['target_events_per_s']:,.0f} events/s target, "
                    f"{paced_figures['api_events_per_s']:,.0f} sent, drained "
                    f"{paced_figures['drain_after_last_200_s']:.1f}s after the last 200",
                ),
                (
                    "paced: 200 -> events stored",
                    fmt_ms(paced_figures["visible_after_200_ms"])
                    + f", on profile {paced_figures['visibility_samples_on_profile']}",
                ),
                ("paced: /v1/track during paced", fmt_ms(paced_figures["track_during_paced_ms"])),
            ]
        rows_out += [
            ("COPY plain table", f"{figures['copy']['plain_events_per_s']:,.0f} events/s"),
            ("COPY with cdp_event's indexes", f"{figures['copy']['indexed_events_per_s']:,.0f} events/s"),
            ("COPY into cdp_event's twin", f"{figures['copy']['twin_events_per_s']:,.0f} events/s"),
            (
                "ratio pipeline / COPY",
                f"{figures['ratio_pipeline_to_copy']:.4f} (plain), "
                f"{figures['ratio_pipeline_to_copy_indexed']:.4f} (indexed), "
                f"{figures['ratio_pipeline_to_copy_twin']:.4f} (twin)",
            ),
            (
                "CPU seconds during bulk",
                ", ".join(f"{name} {value:.0f}" for name, value in bulk["cpu_seconds"].items())
                + f" (wall {wall:.0f}s x {os.cpu_count()} cores = {os.cpu_count() * wall:.0f})",
            ),
            ("target", "≥10,000 events/s end-to-end; track p99 < 50 ms; visible p95 < 2000 ms"),
        ]
        width = max(len(name) for name, _ in rows_out)
        for name, value in rows_out:
            print(f"{name:<{width}}  {value}")
        print(line)
        print(f"total run {time.monotonic() - run_started:.0f}s")
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2, default=str))
        succeeded = True
        return 0
    finally:
        processes.stop_all()
        if args.drop_at_end:
            with psycopg.connect(admin_dsn, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        if succeeded and not args.keep_logs:
            for path in sorted(log_dir.rglob("*"), reverse=True):
                path.unlink() if path.is_file() else path.rmdir()
            log_dir.rmdir()
        else:
            print(f"logs kept in {log_dir}")


if __name__ == "__main__":
    sys.exit(main())
