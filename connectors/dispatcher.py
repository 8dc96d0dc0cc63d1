"""The dispatcher: claims due messages, takes from the account's shared rate limit, sends, records.

Claim, then work: due ``queued`` rows are claimed with ``FOR UPDATE SKIP LOCKED`` and committed as
``sending`` with a lease before anything goes to the provider, so no two dispatchers ever hold the
same message. Answers are committed together; a message whose lease runs out while still
``sending`` is one whose worker died between claiming and recording: the provider may or may not
have it, so it becomes ``unknown`` and is never sent again without a person deciding.

The rate limit is a token bucket per account in PostgreSQL, taken from by every worker in one
statement; sends of a batch go out from a thread pool (providers answer slowly, the work is waiting).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from cdp import json_codec
from cdp.ingest import system_events_record
from cdp.models import Consent
from cdp.sqlvalues import json_rows
from cdp.wakeups import wake_once
from connectors.accounts import account_pause, admins_notify, kind_instance
from connectors.models import ChannelAccount, Message
from connectors.protocol import (
    Channel,
    DeferError,
    OutgoingMessage,
    PauseAccountError,
    PermanentError,
    ProviderError,
    RetryableError,
    SendResult,
)
from connectors.ratelimit import tokens_return, tokens_take
from connectors.sendcaps import REASON_OVER_CAP, over_daily_cap

log = logging.getLogger(__name__)

BATCH = 100
MAX_ATTEMPTS = 5
# A wake-up no worker started within this long is dropped; the sweep (every 2 s) queues a new one.
WAKE_EXPIRES = 30


def backoff_seconds(attempt: int) -> float:
    base = min(5 * 2 ** (attempt - 1), 600)
    return base * (0.8 + 0.4 * random.random())  # noqa: S311 (jitter)


# -- waking workers ----------------------------------------------------------------------------


def dispatch_wake(*, account_id: int) -> None:
    """Asks a dispatch worker to look at the account, unless a wake-up for it is already waiting
    (``cdp.wakeups``; the beat sweep catches whatever a lost wake-up leaves)."""
    from connectors.tasks import dispatch_account

    try:
        wake_once(
            dispatch_account, key=f"dispatch_account:{account_id}", expires=WAKE_EXPIRES, args=(account_id,)
        )
    except Exception:  # the broker being away must not fail the caller's commit; the sweep follows
        log.warning("could not wake a dispatcher for account %s", account_id, exc_info=True)


# -- claiming ----------------------------------------------------------------------------------


@dataclass
class Claimed:
    id: int
    idempotency_key: str
    recipient: str
    content: dict
    customer_id: int | None
    attempts: int
    channel: str
    template_id: int | None


def _claim(*, account_id: int, limit: int, claim: str) -> list[Claimed]:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE connectors_message m
            SET status = 'sending', claim = %s, attempts = m.attempts + 1,
                lease_until = clock_timestamp() + make_interval(secs => %s)
            WHERE m.id IN (
                SELECT id FROM connectors_message
                WHERE account_id = %s AND status = 'queued' AND due_at <= clock_timestamp()
                  AND EXISTS (SELECT 1 FROM connectors_channelaccount a
                              WHERE a.id = %s AND a.status = 'active')
                ORDER BY due_at, id
                LIMIT %s
                FOR UPDATE SKIP LOCKED
            )
            RETURNING m.id, m.idempotency_key, m.recipient, m.content, m.customer_id, m.attempts,
                      m.channel, m.template_id
            """,
            [claim, settings.DISPATCH_LEASE_SECONDS, account_id, account_id, limit],
        )
        rows = cursor.fetchall()
    return [
        Claimed(
            id=row[0],
            idempotency_key=row[1],
            recipient=row[2],
            content=row[3] if isinstance(row[3], dict) else json_codec.loads(row[3]),
            customer_id=row[4],
            attempts=row[5],
            channel=row[6],
            template_id=row[7],
        )
        for row in rows
    ]


def _consent_refused(claimed: list[Claimed]) -> set[int]:
    """Messages whose customer said no on the message's channel."""
    by_channel: dict[str, list[Claimed]] = defaultdict(list)
    for item in claimed:
        consent_channel = Channel.CONSENT.get(item.channel)
        if consent_channel and item.customer_id:
            by_channel[consent_channel].append(item)
    refused: set[int] = set()
    for consent_channel, items in by_channel.items():
        unsubscribed = set(
            Consent.objects.filter(
                channel=consent_channel,
                status=Consent.Status.UNSUBSCRIBED,
                customer_id__in=[item.customer_id for item in items],
            ).values_list("customer_id", flat=True)
        )
        refused.update(item.id for item in items if item.customer_id in unsubscribed)
    return refused


# -- sending -----------------------------------------------------------------------------------

_executors: dict[int, ThreadPoolExecutor] = {}
_executor_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    with _executor_lock:
        pid = os.getpid()
        if pid not in _executors:
            _executors[pid] = ThreadPoolExecutor(max_workers=BATCH, thread_name_prefix="dispatch")
        return _executors[pid]


@dataclass
class Outcome:
    id: int
    status: str
    reason: str = ""
    provider_message_id: str = ""
    raw: str = ""
    due_at: dt.datetime | None = None
    event: str = ""
    pause: str = ""


def _send_one(connector, item: Claimed) -> SendResult | ProviderError | Exception:
    message = OutgoingMessage(
        id=item.id,
        idempotency_key=item.idempotency_key,
        recipient=item.recipient,
        content=item.content,
        customer_id=item.customer_id,
    )
    try:
        return connector.send(message)
    except ProviderError as error:
        return error
    except Exception as error:  # a connector bug: the provider may have the message, so in doubt
        log.exception("connector %s failed on message %s", type(connector).__name__, item.id)
        return error


def _outcome(item: Claimed, answer, now: dt.datetime) -> Outcome:
    if isinstance(answer, SendResult):
        return Outcome(
            item.id,
            Message.Status.SENT,
            provider_message_id=answer.provider_message_id,
            raw=answer.raw,
            event="message_sent",
        )
    if isinstance(answer, RetryableError):
        if item.attempts >= MAX_ATTEMPTS:
            reason = f"gave up after {item.attempts} attempts: {answer.reason}"
            return Outcome(item.id, Message.Status.FAILED, reason, raw=answer.raw, event="message_failed")
        due = now + dt.timedelta(seconds=backoff_seconds(item.attempts))
        return Outcome(item.id, Message.Status.QUEUED, f"retry: {answer.reason}", raw=answer.raw, due_at=due)
    if isinstance(answer, DeferError):
        return Outcome(
            item.id, Message.Status.QUEUED, f"deferred: {answer.reason}", raw=answer.raw, due_at=answer.until
        )
    if isinstance(answer, PauseAccountError):
        return Outcome(
            item.id, Message.Status.HELD, f"account paused: {answer.reason}", answer.raw, pause=answer.reason
        )
    if isinstance(answer, PermanentError):
        return Outcome(item.id, Message.Status.FAILED, answer.reason, raw=answer.raw, event="message_failed")
    return Outcome(item.id, Message.Status.UNKNOWN, f"the connector failed: {answer!r}"[:2000])


# -- recording ---------------------------------------------------------------------------------


def _record(*, account: ChannelAccount, claim: str, claimed: list[Claimed], outcomes: list[Outcome]) -> int:
    by_id = {item.id: item for item in claimed}
    now = timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE connectors_message m
                SET status = r.status, reason = r.reason, claim = '', lease_until = NULL,
                    provider_message_id = CASE WHEN r.provider_message_id <> '' THEN r.provider_message_id
                                               ELSE m.provider_message_id END,
                    provider_answer = CASE WHEN r.raw <> '' THEN r.raw ELSE m.provider_answer END,
                    due_at = COALESCE(r.due_at, m.due_at),
                    sent_at = CASE WHEN r.status = 'sent' THEN %s ELSE m.sent_at END,
                    failed_at = CASE WHEN r.status = 'failed' THEN %s ELSE m.failed_at END
                FROM json_to_recordset(%s::json) AS r(id bigint, status text, reason text,
                     provider_message_id text, raw text, due_at timestamptz)
                WHERE m.id = r.id AND m.claim = %s AND m.status IN ('sending', 'unknown')
                RETURNING m.id
                """,
                [
                    now,
                    now,
                    json_rows(
                        "id status reason provider_message_id raw due_at",
                        [
                            (
                                o.id,
                                o.status,
                                printable(o.reason),
                                o.provider_message_id,
                                printable(o.raw),
                                o.due_at and o.due_at.isoformat(),
                            )
                            for o in outcomes
                        ],
                    ),
                    claim,
                ],
            )
            recorded = {row[0] for row in cursor.fetchall()}
            cursor.execute(
                """
                INSERT INTO connectors_messagelog (message_id, at, step, status, detail, raw)
                SELECT id, %s, 'attempt', status, detail, raw
                FROM json_to_recordset(%s::json) AS r(id bigint, status text, detail text, raw text)
                """,
                [
                    now,
                    json_rows(
                        "id status detail raw",
                        [
                            (
                                o.id,
                                o.status,
                                printable(_attempt_detail(by_id[o.id].attempts, o)),
                                printable(o.raw[:20000]),
                            )
                            for o in outcomes
                            if o.id in recorded
                        ],
                    ),
                ],
            )
        pauses = [o.pause for o in outcomes if o.pause and o.id in recorded]
        if pauses:
            account_pause(account_id=account.pk, reason=pauses[0])
        _events_record(
            account=account, claimed=by_id, outcomes=[o for o in outcomes if o.id in recorded], now=now
        )
    return len(recorded)


def printable(text: str) -> str:
    """PostgreSQL text holds no NUL: a provider's answer keeps every other byte as it came."""
    return text.replace("\x00", "\\x00")


def _attempt_detail(attempt: int, outcome: Outcome) -> str:
    if outcome.status == Message.Status.SENT:
        return f"attempt {attempt}: accepted, provider id {outcome.provider_message_id}"
    return f"attempt {attempt}: {outcome.reason}"


def _events_record(*, account: ChannelAccount, claimed: dict, outcomes: list[Outcome], now) -> None:
    groups: dict[tuple, list[tuple[int, str, dict]]] = defaultdict(list)
    for outcome in outcomes:
        item = claimed[outcome.id]
        if outcome.event and item.customer_id:
            key = (outcome.event, item.channel, item.template_id)
            # Which message, as receipts and clicks say it: journeys and rules can tie them together.
            groups[key].append((item.customer_id, outcome.event, {"message": outcome.id}))
    for (event, channel, template_id), rows in groups.items():
        system_events_record(
            rows=rows,
            kind="track",
            properties={"channel": channel, "account": account.pk, "template": template_id},
            moment=now,
            message_prefix=f"{event}-{uuid.uuid4().hex[:12]}",
        )


def skipped_record(*, claim: str, items: list[Claimed], reason: str, account: ChannelAccount) -> None:
    outcomes = [Outcome(item.id, Message.Status.SKIPPED, reason, event="message_skipped") for item in items]
    _record(account=account, claim=claim, claimed=items, outcomes=outcomes)


# -- the loop ----------------------------------------------------------------------------------


def dispatch_batch(*, account: ChannelAccount, limit: int = BATCH) -> int:
    """One round: take tokens, claim that many due messages, send them, record the answers.
    Returns how many were claimed (0: nothing due or no token yet)."""
    try:
        connector = kind_instance(account)
    except Exception as error:  # unreadable secrets, settings the kind no longer accepts: an admin must act
        # The message only: a traceback would carry the decrypted settings.
        log.error("account %s cannot be used: %s: %s", account.pk, type(error).__name__, error)
        account_pause(account_id=account.pk, reason=f"the account's settings cannot be used: {error}"[:500])
        return 0
    granted, _rate = tokens_take(account_id=account.pk, wanted=limit)
    if not granted:
        return 0
    claim = uuid.uuid4().hex
    claimed = _claim(account_id=account.pk, limit=granted, claim=claim)
    tokens_return(account_id=account.pk, count=granted - len(claimed))
    if not claimed:
        return 0
    refused = _consent_refused(claimed)
    if refused:
        skipped_record(
            claim=claim,
            items=[item for item in claimed if item.id in refused],
            reason=gettext_noop("The customer unsubscribed from this channel."),
            account=account,
        )
    to_send = [item for item in claimed if item.id not in refused]
    capped = over_daily_cap(to_send)
    if capped:
        skipped_record(
            claim=claim,
            items=[item for item in to_send if item.id in capped],
            reason=REASON_OVER_CAP,
            account=account,
        )
        to_send = [item for item in to_send if item.id not in capped]
    if not to_send:
        return len(claimed)
    parallel = min(len(to_send), connector.max_parallel)
    if parallel <= 1:
        answers = [_send_one(connector, item) for item in to_send]
    else:
        answers = list(_executor().map(lambda item: _send_one(connector, item), to_send))
    now = timezone.now()
    _record(
        account=account,
        claim=claim,
        claimed=to_send,
        outcomes=[_outcome(item, answer, now) for item, answer in zip(to_send, answers, strict=True)],
    )
    connector.sends_recorded()
    return len(claimed)


def _has_due(account_id: int) -> bool:
    return Message.objects.filter(
        account_id=account_id, status=Message.Status.QUEUED, due_at__lte=timezone.now()
    ).exists()


def dispatch_account_run(*, account_id: int, budget_seconds: float = 3.0) -> int:
    """Dispatches the account's due messages until none is due or the time budget is spent; returns
    how many it claimed. Waits for tokens when the rate limit is reached. The budget is short so a
    worker moves on to other accounts' wake-ups; a follow-up is queued when work is left."""
    deadline = time.monotonic() + budget_seconds
    total = 0
    while time.monotonic() < deadline:
        account = ChannelAccount.objects.filter(pk=account_id).first()
        if account is None or account.status != ChannelAccount.Status.ACTIVE:
            return total
        claimed = dispatch_batch(account=account)
        total += claimed
        if claimed:
            continue
        if not _has_due(account_id):
            return total
        # Due messages but no token: wait for about one token (the limit other workers share).
        time.sleep(min(0.05, 1.0 / max(account.rate_per_second, 1.0)))
    if _has_due(account_id):
        dispatch_wake(account_id=account_id)
    return total


IN_DOUBT = gettext_noop(
    "The dispatcher stopped before recording the provider's answer: check with the provider before "
    "sending it again."
)


def leases_expire() -> int:
    """Messages whose dispatcher died between claiming and recording become ``unknown``; admins are
    told how many, on their open pages."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            WITH expired AS (
                UPDATE connectors_message SET status = 'unknown', reason = %s
                WHERE status = 'sending' AND lease_until < clock_timestamp()
                RETURNING id
            )
            INSERT INTO connectors_messagelog (message_id, at, step, status, detail, raw)
            SELECT id, clock_timestamp(), 'unknown', 'unknown', 'lease expired', '' FROM expired
            RETURNING message_id
            """,
            [IN_DOUBT],
        )
        count = len(cursor.fetchall())
        if count:
            transaction.on_commit(
                lambda: admins_notify(
                    message=gettext_noop(
                        "%(count)s messages are in doubt; open Messages to decide about them."
                    ),
                    params={"count": count},
                    data={"in_doubt": count},
                )
            )
    return count


def dispatch_sweep() -> list[int]:
    """Beat's sweep: expires leases, wakes a dispatcher for every account with due messages."""
    leases_expire()
    # Accounts are few and the outbox may be long: one index probe per active account.
    woken = []
    for account_id in ChannelAccount.objects.filter(status=ChannelAccount.Status.ACTIVE).values_list(
        "pk", flat=True
    ):
        if _has_due(account_id):
            dispatch_wake(account_id=account_id)
            woken.append(account_id)
    return woken
