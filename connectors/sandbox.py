"""What every sandbox provider shares: a provider that records instead of delivering.

A sandbox kind is two halves, like a real connector and the provider it talks to. The *provider
half* (``provider_answer``, ``callbacks_build``) receives a message, records it in the sandbox outbox
(``SandboxDelivery``, once per idempotency key, counting repeated requests), answers in the
provider's wire format after ``latency_ms``, and later posts receipts in the provider's callback
format, signed as the provider signs, to our real inbound URL. The *client half* (``answer_read``,
``parse_callback``) is the connector proper: it reads those answers and callbacks exactly as it
would read the real provider's.

The provider half keeps its own database connections (a small pool), as a provider has its own
storage; dispatcher threads call it without touching Django's connections.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import math
import random
import secrets
import threading
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from pydantic import BaseModel, ConfigDict, Field

from connectors.callbacks import callback_fresh, timestamp_read
from connectors.protocol import (
    CallbackRejected,
    ConnectorKind,
    InboundRequest,
    OutgoingMessage,
    SendResult,
    secret,
)

log = logging.getLogger(__name__)


class SandboxSettings(BaseModel):
    """Settings every sandbox kind takes: how it behaves, so tests and demos can shape it."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: int = Field(0, ge=0, le=30_000, description="How long the provider takes to answer.")
    receipt_delay_seconds: float = Field(
        2.0, ge=0, le=86_400, description="How long after a send its receipt is posted back."
    )
    failure_rate: float = Field(
        0.0, ge=0, le=1, description="Share of accepted messages whose receipt reports a failure."
    )
    error_rate: float = Field(0.0, ge=0, le=1, description="Share of sends the provider refuses.")
    error_code: str = Field("", max_length=100, description="The provider's error code for refused sends.")
    garbage_rate: float = Field(
        0.0, ge=0, le=1, description="Share of sends answered with an unreadable answer."
    )
    callback_secret: str = secret(
        min_length=8, max_length=200, description="Signs the receipts the provider posts back."
    )


GARBAGE = b"<html><body>\x00upstream said: 0x1f?? {partial"


@dataclass(frozen=True)
class Outcome:
    kind: str  # accepted, error, garbage
    receipt_failed: bool = False


@dataclass(frozen=True)
class Delivery:
    """A recorded delivery whose receipt is due (what ``callbacks_build`` turns into requests)."""

    id: int
    provider_message_id: str
    idempotency_key: str
    recipient: str
    receipt_status: str
    content: dict
    received_at: dt.datetime


@dataclass(frozen=True)
class Callback:
    """One HTTP request a provider posts to us."""

    body: bytes
    content_type: str = "application/json"
    headers: dict | None = None
    query: dict | None = None
    delivery_ids: tuple[int, ...] = ()


def outcome_for(*, account_id: int, key: str, sandbox: SandboxSettings) -> Outcome:
    # Seeded by the idempotency key: the same message always meets the same fate.
    rng = random.Random(f"{account_id}:{key}")  # noqa: S311 (simulation, not security)
    draw = rng.random()
    if draw < sandbox.garbage_rate:
        return Outcome("garbage")
    if draw < sandbox.garbage_rate + sandbox.error_rate and sandbox.error_code:
        return Outcome("error")
    return Outcome("accepted", receipt_failed=rng.random() < sandbox.failure_rate)


def _signature(secret_value: str, timestamp: str, nonce: str, body: bytes) -> str:
    signed = f"{timestamp}.{nonce}.".encode() + body
    return hmac.new(secret_value.encode(), signed, hashlib.sha256).hexdigest()


def signed_headers(secret_value: str, body: bytes) -> dict[str, str]:
    """The sandbox providers' own callback signature (SMS, WeCom, calls, webhook): HMAC-SHA256 over
    ``<timestamp>.<nonce>.<body>``, so a copied signature signs no other body, and with
    ``connectors.callbacks`` it is good once, within 5 minutes."""
    timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
    return {
        "X-Sandbox-Timestamp": timestamp,
        "X-Sandbox-Nonce": nonce,
        "X-Sandbox-Signature": _signature(secret_value, timestamp, nonce, body),
    }


_pool_lock = threading.Lock()
_pools: dict[tuple[int, str], object] = {}


def _pool():
    """The provider's own connections (per process: a forked worker opens its own)."""
    import os

    from psycopg_pool import ConnectionPool

    db = connection.settings_dict
    key = (os.getpid(), db["NAME"])
    with _pool_lock:
        if key not in _pools:
            conninfo = {
                "dbname": db["NAME"],
                "user": db["USER"] or "postgres",
                "host": db["HOST"] or "127.0.0.1",
                "port": db["PORT"] or 5432,
            }
            if db.get("PASSWORD"):
                conninfo["password"] = db["PASSWORD"]
            text = " ".join(f"{name}={value}" for name, value in conninfo.items())
            _pools[key] = ConnectionPool(
                text, min_size=1, max_size=16, open=True, kwargs={"autocommit": True}
            )
        return _pools[key]


def _record(
    *,
    account_id: int,
    message: OutgoingMessage,
    provider_message_id: str,
    answer: bytes,
    accepted: bool,
    receipt_status: str,
    receipt_due_at: dt.datetime | None,
) -> tuple[bytes, int]:
    """Records the request; a repeated idempotency key only counts the request and gets the first answer."""
    with _pool().connection() as conn:
        row = conn.execute(
            """
            INSERT INTO connectors_sandboxdelivery (account_id, idempotency_key, provider_message_id,
                recipient, content, answer, accepted, requests, received_at, receipt_status,
                receipt_due_at, receipt_attempts)
            VALUES (%s, %s, %s, %s, %s, %s, %s, 1, clock_timestamp(), %s, %s, 0)
            ON CONFLICT (account_id, idempotency_key)
            DO UPDATE SET requests = connectors_sandboxdelivery.requests + 1
            RETURNING answer, requests
            """,
            [
                account_id,
                message.idempotency_key,
                provider_message_id,
                message.recipient,
                json.dumps(message.content),
                answer.decode("utf-8", "replace").replace("\x00", "\\x00"),
                accepted,
                receipt_status,
                receipt_due_at,
            ],
        ).fetchone()
    return row[0].encode(), row[1]


class SandboxKind(ConnectorKind):
    """A connector kind whose provider is the sandbox. Subclasses give the wire formats."""

    sandbox = True
    settings_model = SandboxSettings

    # Provider half -------------------------------------------------------------------------
    def provider_accept(self, message: OutgoingMessage, provider_message_id: str) -> bytes:
        raise NotImplementedError

    def provider_refuse(self, message: OutgoingMessage, code: str) -> bytes:
        raise NotImplementedError

    def callbacks_build(self, deliveries: list[Delivery]) -> list[Callback]:
        raise NotImplementedError

    def provider_message_id_new(self) -> str:
        return uuid.uuid4().hex

    # Client half ---------------------------------------------------------------------------
    def answer_read(self, raw: bytes) -> SendResult:
        raise NotImplementedError

    def callback_verify(self, request: InboundRequest) -> None:
        """Refuses (``CallbackRejected``) a callback not signed as ``signed_headers`` signs with the
        account's secret, older than the window, or whose nonce was used before."""
        headers = request.headers
        timestamp, nonce = headers.get("x-sandbox-timestamp", ""), headers.get("x-sandbox-nonce", "")
        expected = _signature(self.settings.callback_secret, timestamp, nonce, request.body)
        if not hmac.compare_digest(expected, headers.get("x-sandbox-signature", "")):
            raise CallbackRejected("signature does not match")
        callback_fresh(account_id=self.account_id, timestamp=timestamp_read(timestamp), nonce=nonce)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._receipts_due: list[float] = []  # appended to by the dispatcher's threads

    def sends_recorded(self) -> None:
        """The provider posts each receipt when it is due: one wake-up per second that has some."""
        due, self._receipts_due = self._receipts_due, []
        for second in sorted({math.ceil(at) for at in due}):
            receipts_wake(at=second)

    def send(self, message: OutgoingMessage) -> SendResult:
        sandbox: SandboxSettings = self.settings
        if sandbox.latency_ms:
            time.sleep(sandbox.latency_ms / 1000)  # the provider's answering time, simulated
        outcome = outcome_for(account_id=self.account_id, key=message.idempotency_key, sandbox=sandbox)
        if outcome.kind == "error":
            return self.answer_read(self.provider_refuse(message, sandbox.error_code))
        provider_message_id = self.provider_message_id_new()
        if outcome.kind == "garbage":
            raw, _requests = _record(
                account_id=self.account_id,
                message=message,
                provider_message_id=provider_message_id,
                answer=GARBAGE,
                accepted=False,
                receipt_status="",
                receipt_due_at=None,
            )
            return self.answer_read(raw)
        due = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=sandbox.receipt_delay_seconds)
        self._receipts_due.append(due.timestamp())
        raw, _requests = _record(
            account_id=self.account_id,
            message=message,
            provider_message_id=provider_message_id,
            answer=self.provider_accept(message, provider_message_id),
            accepted=True,
            receipt_status="failed" if outcome.receipt_failed else "delivered",
            receipt_due_at=due,
        )
        return self.answer_read(raw)


def json_body(value) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def callback_url(account_id: int) -> str:
    from django.urls import reverse

    return settings.SITE_URL + reverse("connector_inbound", kwargs={"account_id": account_id})


def _http_post(url: str, callback: Callback) -> int:
    import urllib.error
    import urllib.parse
    import urllib.request

    if callback.query:
        url = f"{url}?{urllib.parse.urlencode(callback.query)}"
    request = urllib.request.Request(  # noqa: S310 (our own SITE_URL)
        url,
        data=callback.body,
        method="POST",
        headers={"Content-Type": callback.content_type, **(callback.headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


# Receipts due further ahead than this are left to beat's sweep (every 15 s) rather than held by a
# worker as a task with an ETA for that long.
RECEIPT_WAKE_HORIZON_SECONDS = 120


def receipts_wake(*, at: float) -> None:
    """Queues the receipts run for the Unix time ``at`` (once per second, whatever the sends)."""
    from cdp.wakeups import wake_once
    from connectors.tasks import sandbox_receipts

    delay = at - time.time()
    if delay > RECEIPT_WAKE_HORIZON_SECONDS:
        return
    try:
        wake_once(sandbox_receipts, key=f"sandbox_receipts:{at:.0f}", expires=30, countdown=max(delay, 0))
    except Exception:  # the sweep posts it; a send must not fail for a lost wake-up
        log.warning("could not queue the sandbox's receipts", exc_info=True)


def receipts_post(*, limit: int = 500, post=None) -> int:
    """The sandbox providers post the receipts that are due to our inbound URL, as the real ones
    would. ``post(url, callback) -> HTTP status`` (default: a real HTTP request to SITE_URL).
    Returns how many receipts were posted."""
    from django.db import transaction
    from django.utils import timezone

    from connectors.accounts import kind_instance
    from connectors.models import ChannelAccount, SandboxDelivery

    post = post or _http_post
    posted = 0
    with transaction.atomic():
        due = list(
            SandboxDelivery.objects.select_for_update(skip_locked=True)
            .filter(receipt_posted_at__isnull=True, receipt_due_at__lte=timezone.now())
            .order_by("receipt_due_at")[:limit]
        )
        by_account: dict[int, list[SandboxDelivery]] = {}
        for delivery in due:
            by_account.setdefault(delivery.account_id, []).append(delivery)
        accounts = ChannelAccount.objects.in_bulk(list(by_account))
        now = timezone.now()
        for account_id, deliveries in by_account.items():
            account = accounts.get(account_id)
            connector = kind_instance(account) if account is not None else None
            if not isinstance(connector, SandboxKind):
                continue
            rows = {delivery.pk: delivery for delivery in deliveries}
            callbacks = connector.callbacks_build(
                [
                    Delivery(
                        id=delivery.pk,
                        provider_message_id=delivery.provider_message_id,
                        idempotency_key=delivery.idempotency_key,
                        recipient=delivery.recipient,
                        receipt_status=delivery.receipt_status,
                        content=delivery.content,
                        received_at=delivery.received_at,
                    )
                    for delivery in deliveries
                ]
            )
            url = callback_url(account_id)
            for callback in callbacks:
                status = post(url, callback)
                for delivery_id in callback.delivery_ids:
                    delivery = rows[delivery_id]
                    delivery.receipt_attempts += 1
                    if 200 <= status < 300:
                        delivery.receipt_posted_at = now
                        posted += 1
                    else:  # as providers do: try again later, a little later each time
                        delivery.receipt_due_at = now + dt.timedelta(
                            seconds=min(2**delivery.receipt_attempts, 600)
                        )
            SandboxDelivery.objects.bulk_update(
                deliveries, ["receipt_attempts", "receipt_posted_at", "receipt_due_at"]
            )
    return posted


def pools_close() -> None:
    """Closes this process's sandbox connections (tests, before their database is dropped)."""
    with _pool_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()
