"""End-to-end freshness of segments: from sending an event to ``/v1/track`` until the customer's
segment membership shows it, through the app's real processes at a steady rate (the rules issue
promises "customers touched by new events are re-evaluated within 5 seconds, p95").

Builds ``cdp_bench_freshness`` (dropped and recreated; ``--reuse`` keeps it): 100,000 customers with a
user id each and 1,000,000 events over 90 days with their rollups, as ``bench/segment_eval.py`` builds
its database. Creates five dynamic segments, one built on two others, then starts daphne, a Celery
worker on the ``default,ingest,segments`` queues (prefork, 2 children, as ``make run`` does) and beat,
and sends one event every 1/``--rate`` s for ``--seconds`` (``/v1/track``, ``/v1/page``; with
``--batch N``, N events a ``/v1/batch`` request). Each event is a probe for a customer it must move:

  - "Order Completed" for a customer with no order in 7 days: enters "ordered in 7 days", and
    "ordered or viewed beauty" (built on it);
  - "Product Viewed" of 美妆 for a customer who viewed none in 14 days: enters "viewed beauty in 14
    days", and "ordered or viewed beauty";
  - a page view for a customer with none in 30 days: exits "no visit in 30 days".

A poller reads the probes' event keys and memberships every 50 ms; each probe's times, from the
moment before its request went out: to its event being stored, and to each expected membership
change (as of the poll's snapshot, so up to 50 ms late). Prints p50/p95/max per change and for the
whole probe (all of its changes visible).

    .venv/bin/python bench/segment_freshness.py [--customers 100000] [--events 1000000] [--rate 20]
        [--seconds 60] [--batch 1] [--reuse] [--drop-at-end] [--keep-logs] [--json FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from benchdb import database_migrate
from ingest_throughput import Client, Processes, fmt_ms, machine_busy_seconds, percentiles, production_env
from segment_eval import build

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SERVER = "postgres://postgres@127.0.0.1:5432"
DATABASE = "cdp_bench_freshness"
# Redis databases of their own, away from the ingest bench (9, 10) and the tests.
BROKER_URL = "redis://127.0.0.1:6379/14"
CACHE_URL = "redis://127.0.0.1:6379/15"
WRITE_KEY = "bench-key"  # the source segment_eval.build creates
POLL_SECONDS = 0.05
TARGET_P95_MS = 5000

SEGMENTS = {
    "fresh-ordered-7d": {"event": "Order Completed", "within_days": 7},
    "fresh-beauty-14d": {
        "event": "Product Viewed",
        "where": [{"property": "category", "op": "eq", "value": "美妆"}],
        "within_days": 14,
    },
    "fresh-no-visit-30d": {"not": {"event": "page_viewed", "within_days": 30}},
    "fresh-shenzhen-buyers": {
        "and": [
            {"trait": "city", "op": "eq", "value": "深圳"},
            {"event": "Order Completed", "count": {"op": "gte", "value": 2}, "within_days": 30},
        ]
    },
    "fresh-ordered-or-beauty": {"or": [{"segment": "fresh-ordered-7d"}, {"segment": "fresh-beauty-14d"}]},
}


@dataclass
class Kind:
    """A kind of probe: the event it sends, who it is sent for, and what must change."""

    name: str
    path: str  # /v1/track or /v1/page
    message: dict  # type, event/name, properties
    # SQL over c: the customers this probe may be sent for (fixed text; segment ids as %s)
    candidates: str
    expect: list[tuple[str, bool]]  # (segment key, member afterwards)


KINDS = [
    Kind(
        "order",
        "/v1/track",
        {"type": "track", "event": "Order Completed", "properties": {"revenue": 199, "currency": "CNY"}},
        "NOT EXISTS (SELECT 1 FROM segments_segmentmember m JOIN segments_segment g ON g.id = m.segment_id"
        " WHERE m.customer_id = c.id AND g.key IN ('fresh-ordered-7d', 'fresh-ordered-or-beauty'))",
        [("fresh-ordered-7d", True), ("fresh-ordered-or-beauty", True)],
    ),
    Kind(
        "beauty",
        "/v1/track",
        {"type": "track", "event": "Product Viewed", "properties": {"category": "美妆", "price": 88}},
        "NOT EXISTS (SELECT 1 FROM segments_segmentmember m JOIN segments_segment g ON g.id = m.segment_id"
        " WHERE m.customer_id = c.id AND g.key IN ('fresh-beauty-14d', 'fresh-ordered-or-beauty'))",
        [("fresh-beauty-14d", True), ("fresh-ordered-or-beauty", True)],
    ),
    Kind(
        "visit",
        "/v1/page",
        {"type": "page", "name": "首页", "properties": {"path": "/"}},
        "EXISTS (SELECT 1 FROM segments_segmentmember m JOIN segments_segment g ON g.id = m.segment_id"
        " WHERE m.customer_id = c.id AND g.key = 'fresh-no-visit-30d')",
        [("fresh-no-visit-30d", False)],
    ),
]


@dataclass
class Probe:
    kind: Kind
    customer_id: int
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    sent: float | None = None  # time.time() just before the request
    status: int | None = None
    stored: float | None = None
    changed: dict[str, float] = field(default_factory=dict)  # segment key: when seen as expected

    @property
    def done(self) -> bool:
        return self.stored is not None and len(self.changed) == len(self.kind.expect)

    def message(self) -> dict:
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return {
            **self.kind.message,
            "userId": f"bench-{self.customer_id}",
            "messageId": self.message_id,
            "timestamp": now,
            "sentAt": now,
            "context": {"library": {"name": "segment_freshness", "version": "1"}},
        }


def prepare(customers: int, events: int, reuse: bool) -> None:
    """The database, a user id per customer, and the segments with their members."""
    if not reuse:
        build(customers, events, database=DATABASE)
        with psycopg.connect(f"{SERVER}/{DATABASE}", autocommit=True) as db:
            db.execute(
                "INSERT INTO cdp_identity (customer_id, type, value, encrypted_value, first_seen_at)"
                " SELECT id, 'user_id', 'bench-' || id, '', now() FROM cdp_customer"
            )
    else:
        database_migrate(SERVER, DATABASE)
    os.environ["DATABASE_URL"] = f"{SERVER}/{DATABASE}"
    # What saving a segment queues goes to this bench's broker (emptied before the worker starts),
    # never to a development broker another process in this checkout may be reading.
    os.environ["CELERY_BROKER_URL"] = BROKER_URL
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from segments.models import Segment
    from segments.services import membership_events_pending, segment_save

    Segment.objects.filter(key__in=SEGMENTS).delete()
    for key, rule in SEGMENTS.items():  # in dependency order: the last one reads two before it
        segment = segment_save(key=key, name=key, rule_data=rule, actor=None)
        print(f"[setup] segment {key}: {segment.member_count:,} members", flush=True)
    # Their segment_entered events, written now rather than by the worker during the run.
    print(f"[setup] {membership_events_pending():,} segment_entered events written", flush=True)
    with psycopg.connect(f"{SERVER}/{DATABASE}", autocommit=True) as db:
        db.execute("VACUUM ANALYZE")  # the server may run without autovacuum


def probes_make(db: psycopg.Connection, count: int, rng: random.Random) -> list[Probe]:
    """``count`` probes, the kinds in turn, each for a different customer."""
    used: set[int] = set()
    pools = {}
    for kind in KINDS:
        rows = db.execute(
            f"SELECT c.id FROM cdp_customer AS c WHERE c.merged_into_id IS NULL AND {kind.candidates}"
            " ORDER BY random() LIMIT %s",
            [count],
        ).fetchall()
        pools[kind.name] = [row[0] for row in rows]
    probes = []
    for number in range(count):
        kind = KINDS[number % len(KINDS)]
        pool = pools[kind.name]
        while pool and pool[-1] in used:
            pool.pop()
        if not pool:
            raise RuntimeError(f"not enough customers for {kind.name} probes; lower --rate or --seconds")
        customer_id = pool.pop()
        used.add(customer_id)
        probes.append(Probe(kind, customer_id))
    rng.shuffle(probes)
    return probes


def send_steadily(port: int, probes: list[Probe], rate: float, senders: int, batch: int) -> None:
    """Open loop: probe n goes out at start + n / rate whatever the answers before it took (each
    sender thread owns every ``senders``-th request and one keep-alive connection). ``batch`` above
    1: that many probes a ``/v1/batch`` request, the requests at rate / batch a second."""
    start = time.monotonic() + 0.5
    requests = [probes[first : first + batch] for first in range(0, len(probes), batch)]

    def run(offset: int) -> None:
        client = Client(port, WRITE_KEY)
        for number in range(offset, len(requests), senders):
            delay = start + number * batch / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            request = requests[number]
            if batch > 1:
                path = "/v1/batch"
                body = json.dumps({"batch": [probe.message() for probe in request]}, ensure_ascii=False)
            else:
                path = request[0].kind.path
                body = json.dumps(request[0].message(), ensure_ascii=False)
            sent = time.time()
            status, answer = client.post(path, body.encode())
            for probe in request:
                probe.sent, probe.status = sent, status
            if status != 200:
                print(f"[run] {path} answered {status}: {answer[:300]!r}", flush=True)
        client.close()

    threads = [threading.Thread(target=run, args=(offset,), daemon=True) for offset in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class Poller(threading.Thread):
    """Every POLL_SECONDS: which sent probes' events are stored and which memberships changed."""

    def __init__(self, dsn: str, probes: list[Probe], segment_ids: dict[str, int], source_id: int):
        super().__init__(daemon=True)
        self.db = psycopg.connect(dsn, autocommit=True)
        self.probes = probes
        self.segment_ids = segment_ids
        self.keys = {segment_id: key for key, segment_id in segment_ids.items()}
        self.source_id = source_id
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            began = time.monotonic()
            self.poll()
            self.stop.wait(max(0.0, POLL_SECONDS - (time.monotonic() - began)))
        self.db.close()

    def poll(self) -> None:
        pending = [probe for probe in self.probes if probe.sent is not None and not probe.done]
        if not pending:
            return
        seen = time.time()  # the statements' snapshot is no older than this
        stored = {
            row[0]
            for row in self.db.execute(
                "SELECT message_id FROM cdp_eventkey WHERE source_id = %s AND message_id = ANY(%s)",
                [self.source_id, [probe.message_id for probe in pending if probe.stored is None]],
            )
        }
        members = {
            (self.keys[segment_id], customer_id)
            for segment_id, customer_id in self.db.execute(
                "SELECT segment_id, customer_id FROM segments_segmentmember"
                " WHERE customer_id = ANY(%s) AND segment_id = ANY(%s)",
                [[probe.customer_id for probe in pending], list(self.segment_ids.values())],
            )
        }
        for probe in pending:
            if probe.stored is None and probe.message_id in stored:
                probe.stored = seen
            for key, member in probe.kind.expect:
                if key not in probe.changed and ((key, probe.customer_id) in members) == member:
                    probe.changed[key] = seen


def latencies_ms(values: list[float | None]) -> dict:
    return percentiles([value * 1000 for value in values if value is not None])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=20.0, help="probe events per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to send")
    parser.add_argument("--senders", type=int, default=4, help="sending threads (keep-alive connections)")
    parser.add_argument("--batch", type=int, default=1, help="probes per request (above 1: /v1/batch)")
    parser.add_argument("--timeout", type=float, default=60.0, help="wait for the last changes this long")
    parser.add_argument("--reuse", action="store_true", help="keep the database built by an earlier run")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--drop-at-end", action="store_true", help="drop the bench database at the end")
    parser.add_argument("--json", type=Path, help="also write every probe's times to this file")
    args = parser.parse_args()

    began = time.perf_counter()
    prepare(args.customers, args.events, args.reuse)
    print(f"[setup] database and segments ready in {time.perf_counter() - began:.0f}s", flush=True)
    dsn = f"{SERVER}/{DATABASE}"
    db = psycopg.connect(dsn, autocommit=True)
    rng = random.Random(args.seed)
    probes = probes_make(db, round(args.rate * args.seconds), rng)
    segment_ids = dict(db.execute("SELECT key, id FROM segments_segment WHERE key LIKE 'fresh-%'").fetchall())
    source_id = db.execute("SELECT id FROM cdp_source WHERE write_key = %s", [WRITE_KEY]).fetchone()[0]

    log_dir = Path(tempfile.mkdtemp(prefix="freshness-bench-"))
    processes = Processes(production_env(dsn, BROKER_URL, CACHE_URL, log_dir), log_dir)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    succeeded = False
    try:
        import redis  # the project's own dependency

        redis.Redis.from_url(BROKER_URL).flushdb()
        busy_before, mark = machine_busy_seconds(), time.perf_counter()
        time.sleep(1.0)
        idle_busy = (machine_busy_seconds() - busy_before) / (time.perf_counter() - mark)
        print(
            f"[setup] before start the machine was busy {idle_busy:.2f} of {os.cpu_count()} cores", flush=True
        )
        port = socket.socket()
        port.bind(("127.0.0.1", 0))
        port_number = port.getsockname()[1]
        port.close()
        processes.start(
            "web", str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port_number), "cdp.asgi:application"
        )
        processes.start(
            "worker",
            str(BIN / "celery"),
            "-A",
            "cdp",
            "worker",
            "-Q",
            "default,ingest,segments",
            "--pool",
            "prefork",
            "--concurrency",
            "2",
            "-n",
            "freshness@%h",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "warning",
        )
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
        deadline = time.monotonic() + 60
        while True:
            processes.check()
            try:
                with socket.create_connection(("127.0.0.1", port_number), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("daphne did not listen within 60s") from None
                time.sleep(0.2)
        # Warm-up: a few probes of their own (not measured), through to their memberships.
        warm = probes_make(db, 6, random.Random(args.seed + 1))
        warm_poller = Poller(dsn, warm, segment_ids, source_id)
        warm_poller.start()
        send_steadily(port_number, warm, 5.0, 1, 1)
        deadline = time.monotonic() + 90
        while not all(probe.done for probe in warm):
            processes.check()
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the warm-up probes did not change their segments within 90s; see {log_dir}"
                )
            time.sleep(0.2)
        warm_poller.stop.set()
        warm_poller.join()
        print("[setup] server, worker and beat answer; warm-up probes arrived in their segments", flush=True)

        print(
            f"[run] {len(probes):,} probes at {args.rate:g}/s for {args.seconds:g}s, {args.batch} a request",
            flush=True,
        )
        poller = Poller(dsn, probes, segment_ids, source_id)
        poller.start()
        busy_before, mark = machine_busy_seconds(), time.perf_counter()
        send_steadily(port_number, probes, args.rate, args.senders, args.batch)
        sending = time.perf_counter() - mark
        deadline = time.monotonic() + args.timeout
        while not all(probe.done for probe in probes) and time.monotonic() < deadline:
            processes.check()
            time.sleep(0.2)
        busy = (machine_busy_seconds() - busy_before) / (time.perf_counter() - mark)
        poller.stop.set()
        poller.join()

        refused = sum(1 for probe in probes if probe.status != 200)
        line = "-" * 100
        print(line)
        print(
            f"{len(probes):,} probes sent at {len(probes) / sending:.1f}/s over {sending:.0f}s "
            f"({refused} not answered 200); machine busy {busy:.2f} of {os.cpu_count()} cores "
            f"(before start {idle_busy:.2f})"
        )
        stored = latencies_ms([probe.stored - probe.sent if probe.stored else None for probe in probes])
        print(f"{'event stored':46} {fmt_ms(stored)}")
        for key in SEGMENTS:
            wanted = [probe for probe in probes if any(k == key for k, _ in probe.kind.expect)]
            if not wanted:
                continue
            member = dict(wanted[0].kind.expect)[key]
            times = [probe.changed[key] - probe.sent if key in probe.changed else None for probe in wanted]
            print(f"{('entered ' if member else 'left ') + key:46} {fmt_ms(latencies_ms(times))}")
        complete = [max(probe.changed.values()) - probe.sent if probe.done else None for probe in probes]
        overall = latencies_ms(complete)
        missing = sum(1 for value in complete if value is None)
        print(f"{'every expected change visible':46} {fmt_ms(overall)}")
        print(
            f"not complete within {args.timeout:g}s after the last send: {missing}; "
            f"target p95 < {TARGET_P95_MS} ms: {'met' if overall.get('p95', 1e9) < TARGET_P95_MS and not missing else 'NOT met'}"
        )
        print(line)
        if args.json:
            args.json.write_text(
                json.dumps(
                    [
                        {
                            "kind": probe.kind.name,
                            "customer": probe.customer_id,
                            "sent": probe.sent,
                            "stored": probe.stored,
                            "changed": probe.changed,
                        }
                        for probe in probes
                    ]
                )
            )
        succeeded = True
        return 0
    finally:
        processes.stop_all()
        db.close()
        if args.drop_at_end:
            with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        if succeeded and not args.keep_logs:
            for path in sorted(log_dir.rglob("*"), reverse=True):
                path.unlink() if path.is_file() else path.rmdir()
            log_dir.rmdir()
        else:
            print(f"logs kept in {log_dir}")


if __name__ == "__main__":
    sys.exit(main())
