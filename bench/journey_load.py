"""A steady load on a running app: customers enrolled in a journey over the API, and tracked events.

``bench/task_latency.py`` and ``tests/journeys/test_fallback_latency.py`` both drive the app with it.
Each stream is paced open-loop: request *i* is due at ``start + i / rate`` whatever the answers, so a
slow server shows as lateness (recorded); the number of requests is fixed in advance (``rate ×
seconds``), and whatever a stream has not sent when ``seconds`` are over is dropped and counted (a
server slower than the load lowers the achieved rate, never the duration). It only talks to 127.0.0.1.

- entries: ``POST /api/journeys/ID/enroll/`` with a new customer each (a phone and a WeChat openid,
  so both the WeChat and the SMS send have a recipient), with an API token;
- events: ``POST /v1/batch`` with ``batch_size`` ``Product Viewed`` events of known visitors, with a
  source's write key as the HTTP Basic user.
"""

from __future__ import annotations

import base64
import http.client
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlparse

ENTRY_THREADS = 8
EVENT_THREADS = 4
# The first full run, with clients giving up after 30 s, left daphne without a free connection in its
# database pool two minutes in: from then on every request waited 30 s for one and failed (503), the
# processes idle (docs/PERFORMANCE.md, 2026-12-07). The load waits longer than any answer takes, so
# that the bench measures the queues; that failure is reported on its own.
CLIENT_TIMEOUT = 300


@dataclass
class Entry:
    """One enroll request: when it was due and sent, how it went, who it enrolled."""

    index: int
    phone: str
    sent_at: float  # Unix time
    late: float  # seconds behind its due time
    seconds: float  # the request's duration
    status: int  # 0: no answer
    customer_id: int | None = None
    enrollment_id: int | None = None


@dataclass
class Batch:
    sent_at: float
    late: float
    seconds: float
    status: int


@dataclass
class LoadResult:
    entries: list[Entry] = field(default_factory=list)
    batches: list[Batch] = field(default_factory=list)
    started_at: float = 0.0
    finished_at: float = 0.0
    planned_entries: int = 0
    planned_batches: int = 0

    def entries_ok(self) -> list[Entry]:
        return [entry for entry in self.entries if entry.status in (200, 201) and entry.enrollment_id]


@dataclass
class Load:
    base_url: str
    token: str
    journey_id: int
    write_key: str
    seconds: float
    entries_per_second: float = 20.0
    events_per_second: float = 100.0
    batch_size: int = 10
    visitors: int = 5000
    run_id: str = field(default_factory=lambda: f"{random.randrange(10**6):06d}")
    result: LoadResult = field(default_factory=LoadResult)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        parsed = urlparse(self.base_url)
        if parsed.hostname != "127.0.0.1" or parsed.scheme != "http":
            raise ValueError("the load only goes to http://127.0.0.1")
        self.port = parsed.port or 80

    def phone(self, index: int) -> str:
        # A mainland mobile number of this run's own: 139, the run's six digits' last two, the index.
        return f"+86139{self.run_id[-2:]}{index:06d}"

    def run(self) -> LoadResult:
        """Sends every request of both streams, then returns what was sent and answered."""
        entries = int(self.entries_per_second * self.seconds)
        batches = int(self.events_per_second * self.seconds / self.batch_size)
        self.result.started_at = start = time.time() + 0.5
        self.result.planned_entries, self.result.planned_batches = entries, batches
        threads = [
            threading.Thread(target=self._entries, args=(start, part, ENTRY_THREADS, entries), daemon=True)
            for part in range(ENTRY_THREADS)
        ]
        events_rate = self.events_per_second / self.batch_size
        threads += [
            threading.Thread(
                target=self._batches, args=(start, part, EVENT_THREADS, batches, events_rate), daemon=True
            )
            for part in range(EVENT_THREADS if batches else 0)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.result.finished_at = time.time()
        self.result.entries.sort(key=lambda entry: entry.index)
        return self.result

    def start(self) -> threading.Thread:
        """Runs the load in a background thread; join it, then read ``result``."""
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        return thread

    # -- the two streams -----------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=CLIENT_TIMEOUT)

    def _post(self, connection, path: str, body: bytes, headers: dict) -> tuple[int, bytes, object]:
        """One POST on a kept-alive connection; a dropped connection is opened again once."""
        for attempt in (1, 2):
            try:
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.read(), connection
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = self._connection()
                if attempt == 2:
                    return 0, b"", connection
        raise AssertionError("unreachable")

    @staticmethod
    def _wait_until(due: float) -> float:
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)  # pacing the load: the next request is not due yet
        return max(time.time() - due, 0.0)

    def _entries(self, start: float, part: int, parts: int, total: int) -> None:
        connection = self._connection()
        headers = {"Authorization": f"Token {self.token}", "Content-Type": "application/json"}
        path = f"/api/journeys/{self.journey_id}/enroll/"
        for index in range(part, total, parts):
            if time.time() > start + self.seconds:
                break  # behind schedule at the end: the rest is dropped, not sent late
            late = self._wait_until(start + index / self.entries_per_second)
            phone = self.phone(index)
            body = json.dumps(
                {
                    "identities": {"phone": phone, "wechat_openid": f"o-load-{self.run_id}-{index}"},
                    "context": {"load": self.run_id},
                }
            ).encode()
            sent = time.time()
            status, answer, connection = self._post(connection, path, body, headers)
            entry = Entry(index, phone, sent, late, time.time() - sent, status)
            if status in (200, 201):
                data = json.loads(answer)
                entry.customer_id = data.get("customer_id")
                entry.enrollment_id = (data.get("enrollment") or {}).get("id")
            with self._lock:
                self.result.entries.append(entry)
        connection.close()

    def _batches(self, start: float, part: int, parts: int, total: int, rate: float) -> None:
        connection = self._connection()
        key = base64.b64encode(f"{self.write_key}:".encode()).decode()
        headers = {"Authorization": f"Basic {key}", "Content-Type": "application/json"}
        rng = random.Random(part)
        for index in range(part, total, parts):
            if time.time() > start + self.seconds:
                break
            late = self._wait_until(start + index / rate)
            events = [
                {
                    "type": "track",
                    "event": "Product Viewed",
                    "userId": f"load-visitor-{rng.randrange(self.visitors)}",
                    "properties": {"sku": f"SKU-{rng.randrange(500):03d}", "price": rng.randrange(50, 5000)},
                    "messageId": str(uuid.uuid4()),
                }
                for _ in range(self.batch_size)
            ]
            body = json.dumps({"batch": events}).encode()
            sent = time.time()
            status, _answer, connection = self._post(connection, "/v1/batch", body, headers)
            with self._lock:
                self.result.batches.append(Batch(sent, late, time.time() - sent, status))
        connection.close()


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..1); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


def fallback_graph(*, wechat_account: int, sms_account: int, wechat_template: str, sms_template: str) -> dict:
    """API trigger → WeChat template (refused by the provider) → on failed, an SMS → end."""

    def node(node_id: str, node_type: str, **config) -> dict:
        return {"id": node_id, "type": node_type, "config": config, "position": {"x": 0, "y": 0}}

    return {
        "nodes": [
            node("t1", "api_trigger"),
            node("s1", "send", account=wechat_account, template=wechat_template, ends=["delivered", "no_response"]),
            node("s2", "send", account=sms_account, template=sms_template, ends=["delivered", "failed", "no_response"]),
        ],
        "edges": [
            {"id": "e1", "source": "t1", "sourceHandle": None, "target": "s1"},
            {"id": "e2", "source": "s1", "sourceHandle": "failed", "target": "s2"},
        ],
    }  # fmt: skip
