"""Reads: why a message that has not gone yet waits, in words, from facts the product holds.

In order: the account is paused (and why); the message is held until a time (a retry's backoff, a
provider's deferral, a send scheduled later); no dispatch worker takes tasks (the ``dispatch``
queue's oldest task is older than ``QUEUE_STALE_AFTER_SECONDS``, read from the broker); the
account's rate limit (a dispatcher is at work on the account, and the messages due before this one
take a second or more at its rate); the dispatch workers are behind (the queue's backlog and its
age); and, when nothing explains a message due for longer than ``QUEUE_STALE_AFTER_SECONDS``, that
no dispatcher seems to be taking it.

The Messages list, a message's page and a journey's page read the same facts: the accounts, their
rate buckets and their due counts once per page, the broker once, and the messages due before each
shown message in one query, never one per row.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.models import Count, Min, Q
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from cdp.queues import Backlog, backlog
from connectors.models import ChannelAccount, Message, RateBucket
from connectors.ratelimit import tokens_available

DISPATCH_QUEUE = "dispatch"
WAITING_STATUSES = (Message.Status.QUEUED, Message.Status.HELD)
# The dispatch queue's oldest task older than this: the workers have more than they take at once.
BEHIND_SECONDS = 5
# A dispatcher takes from an account's bucket at least this often while messages are due on it.
DRAINING_SECONDS = 10
# Counting the messages due before one stops here: "more than 10,000" says enough.
COUNT_CAP = 10_000


@dataclass(frozen=True)
class Wait:
    """Why a message (or a step's messages) waits: ``code`` for the page's style, ``text`` to read."""

    code: str  # paused, held_until, no_worker, workers_behind, rate_limit, unexplained, due
    text: str
    health_link: bool = False  # the words point admins to /healthz


@dataclass
class AccountFacts:
    account: ChannelAccount
    due: int  # queued messages due now on the account (up to COUNT_CAP + 1; 0 when not counted)
    tokens: float | None  # whole sends the rate limit allows right now; None: no bucket yet
    taken_at: dt.datetime | None  # when a dispatcher last took from the account's bucket


@dataclass
class WaitFacts:
    now: dt.datetime
    accounts: dict[int, AccountFacts]
    dispatch: Backlog | None  # None: the broker cannot tell (or did not answer)

    def late_after(self) -> float:
        return float(settings.QUEUE_STALE_AFTER_SECONDS)


def dispatch_backlog() -> Backlog | None:
    try:
        queues = backlog([DISPATCH_QUEUE])
    except Exception:  # a broker that does not answer must not take the page down; unknown it is
        return None
    return queues[0] if queues else None


def _due_counts(ids: list[int], now: dt.datetime) -> dict[int, int]:
    """Queued messages due now per account: one capped index range each (``message_due``)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT a.id, (SELECT count(*) FROM (
                SELECT 1 FROM connectors_message m
                WHERE m.account_id = a.id AND m.status = 'queued' AND m.due_at <= %s LIMIT %s) due)
            FROM unnest(%s::bigint[]) AS a(id)
            """,
            [now, COUNT_CAP + 1, ids],
        )
        return dict(cursor.fetchall())


def wait_facts(*, account_ids, now: dt.datetime | None = None, count_due: bool = True) -> WaitFacts:
    """The accounts' facts (one query each for accounts, buckets and, if asked, due counts) and the
    dispatch queue's backlog (one round trip to the broker)."""
    now = now or timezone.now()
    ids = sorted(set(account_ids))
    accounts = ChannelAccount.objects.in_bulk(ids)
    buckets = RateBucket.objects.in_bulk(ids)
    due = _due_counts(ids, now) if count_due else {}
    facts = {}
    for account_id, account in accounts.items():
        bucket = buckets.get(account_id)
        facts[account_id] = AccountFacts(
            account=account,
            due=due.get(account_id, 0),
            tokens=None
            if bucket is None
            else tokens_available(
                tokens=bucket.tokens, refilled_at=bucket.refilled_at, rate=account.rate_per_second, now=now
            ),
            taken_at=bucket.refilled_at if bucket else None,
        )
    return WaitFacts(now=now, accounts=facts, dispatch=dispatch_backlog())


def _due_before(messages: list[Message], now: dt.datetime) -> dict[int, int]:
    """How many queued messages of its account are due before each of these (one query)."""
    due = [
        message.pk
        for message in messages
        if message.status == Message.Status.QUEUED and message.due_at <= now
    ]
    if not due:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT m.id, (SELECT count(*) FROM (
                SELECT 1 FROM connectors_message q
                WHERE q.account_id = m.account_id AND q.status = 'queued' AND q.due_at <= %s
                  AND (q.due_at, q.id) < (m.due_at, m.id)
                LIMIT %s) ahead)
            FROM connectors_message m WHERE m.id = ANY(%s)
            """,
            [now, COUNT_CAP + 1, due],
        )
        return dict(cursor.fetchall())


def messages_waits(messages, *, now: dt.datetime | None = None) -> dict[int, Wait]:
    """Why each of these messages that has not gone yet (queued or held) waits, by message id."""
    waiting = [message for message in messages if message.status in WAITING_STATUSES]
    if not waiting:
        return {}
    now = now or timezone.now()
    # Each message counts those due before it; the accounts' totals are not needed here.
    facts = wait_facts(account_ids=[message.account_id for message in waiting], now=now, count_due=False)
    ahead = _due_before(waiting, now)
    return {
        message.pk: message_why(message, facts=facts, ahead=ahead.get(message.pk, 0)) for message in waiting
    }


def message_wait(message: Message, *, now: dt.datetime | None = None) -> Wait | None:
    return messages_waits([message], now=now).get(message.pk)


# -- the words ---------------------------------------------------------------------------------


def duration_words(seconds: float) -> str:
    """A duration as people say it, in its largest unit: "40 seconds", "3 minutes", "2 hours"."""
    seconds = max(round(seconds), 0)
    if seconds < 90:
        return ngettext("%(count)s second", "%(count)s seconds", seconds) % {"count": seconds}
    minutes = round(seconds / 60)
    if minutes < 90:
        return ngettext("%(count)s minute", "%(count)s minutes", minutes) % {"count": minutes}
    hours = round(seconds / 3600)
    if hours < 36:
        return ngettext("%(count)s hour", "%(count)s hours", hours) % {"count": hours}
    days = round(seconds / 86400)
    return ngettext("%(count)s day", "%(count)s days", days) % {"count": days}


def moment_words(moment: dt.datetime, now: dt.datetime) -> str:
    """A moment in the site's time zone: the time alone today, with the date otherwise."""
    local, today = timezone.localtime(moment), timezone.localtime(now).date()
    return formats.date_format(local, "H:i:s" if local.date() == today else "Y-m-d H:i")


def count_words(count: int) -> str:
    if count > COUNT_CAP:
        return _("more than %(count)s") % {"count": formats.number_format(COUNT_CAP, force_grouping=True)}
    return formats.number_format(count, force_grouping=True)


def rate_words(rate: float) -> str:
    return formats.number_format(rate, decimal_pos=0 if float(rate).is_integer() else 1)


def _paused(account: ChannelAccount, now: dt.datetime) -> Wait:
    reason = _(account.paused_reason) if account.paused_reason else ""
    if reason and reason[-1] not in ".!?。！？":  # a provider's words: the next sentence starts apart
        reason += "."
    words = {"account": account.name, "reason": reason}
    if account.paused_at:
        words["since"] = moment_words(account.paused_at, now)
        text = (
            _("The account “%(account)s” has been paused since %(since)s: %(reason)s") % words
            if words["reason"]
            else _("The account “%(account)s” has been paused since %(since)s.") % words
        )
    else:
        text = _("The account “%(account)s” is paused.") % words
    resume = _("It goes once an admin resumes the account.")
    return Wait("paused", f"{text} {resume}")


def _held_until(message: Message, now: dt.datetime) -> Wait:
    words = {
        "when": moment_words(message.due_at, now),
        "in": duration_words((message.due_at - now).total_seconds()),
        "attempt": message.attempts + 1,
    }
    reason = message.reason or ""
    if reason.startswith("retry: "):
        words["answer"] = reason.removeprefix("retry: ")
        text = (
            _("The provider did not take it (“%(answer)s”): attempt %(attempt)s is at %(when)s, in %(in)s.")
            % words
        )
    elif reason.startswith("deferred: "):
        words["answer"] = reason.removeprefix("deferred: ")
        text = _("The provider asked to wait (“%(answer)s”): it goes at %(when)s, in %(in)s.") % words
    elif reason:
        words["reason"] = _(reason)
        text = _("Held until %(when)s, in %(in)s: %(reason)s") % words
    else:
        text = _("Held until %(when)s, in %(in)s.") % words
    return Wait("held_until", text)


def _queue_words(facts: WaitFacts) -> Wait | None:
    """The dispatch workers missing (oldest task past the stale limit) or behind."""
    queue = facts.dispatch
    if queue is None or queue.oldest_seconds is None or queue.oldest_seconds <= BEHIND_SECONDS:
        return None
    words = {"count": count_words(queue.waiting), "age": duration_words(queue.oldest_seconds)}
    if queue.oldest_seconds > facts.late_after():
        return Wait(
            "no_worker",
            ngettext(
                "No dispatch worker seems to be taking tasks: %(count)s waits in the dispatch queue, for "
                "%(age)s. An admin can see what is wrong at /healthz.",
                "No dispatch worker seems to be taking tasks: %(count)s wait in the dispatch queue, the "
                "oldest for %(age)s. An admin can see what is wrong at /healthz.",
                queue.waiting,
            )
            % words,
            health_link=True,
        )
    return Wait(
        "workers_behind",
        ngettext(
            "The dispatch workers are behind: %(count)s task waits in the dispatch queue, for %(age)s.",
            "The dispatch workers are behind: %(count)s tasks wait in the dispatch queue, the oldest "
            "for %(age)s.",
            queue.waiting,
        )
        % words,
    )


def _draining(account: AccountFacts, now: dt.datetime) -> bool:
    """A dispatcher took from the account's rate limit lately, or the limit is spent right now."""
    if account.tokens is not None and account.tokens < 1:
        return True
    return account.taken_at is not None and (now - account.taken_at).total_seconds() <= DRAINING_SECONDS


def _unexplained(since: dt.datetime, now: dt.datetime) -> Wait:
    return Wait(
        "unexplained",
        _(
            "Due for %(age)s and nothing here explains the wait: no dispatch worker seems to be taking "
            "this account's messages. An admin can see what is wrong at /healthz."
        )
        % {"age": duration_words((now - since).total_seconds())},
        health_link=True,
    )


def message_why(message: Message, *, facts: WaitFacts, ahead: int) -> Wait:
    now = facts.now
    account = facts.accounts[message.account_id]
    if message.status == Message.Status.HELD or account.account.status == ChannelAccount.Status.PAUSED:
        return _paused(account.account, now)
    if message.due_at > now:
        return _held_until(message, now)
    queue = _queue_words(facts)
    if queue is not None and queue.code == "no_worker":
        return queue
    rate = account.account.rate_per_second
    # A dispatcher is at work on the account: the messages due before this one are what it waits for.
    if ahead and _draining(account, now) and ahead / rate >= 1:
        return Wait(
            "rate_limit",
            _(
                "The account “%(account)s” sends at most %(rate)s messages a second and %(count)s "
                "messages on it are due before this one: at that rate it goes in about %(eta)s."
            )
            % {
                "account": account.account.name,
                "rate": rate_words(rate),
                "count": count_words(ahead),
                "eta": duration_words(ahead / rate),
            },
        )
    if queue is not None:
        return queue
    if (now - message.due_at).total_seconds() > facts.late_after():
        return _unexplained(message.due_at, now)
    return Wait("due", _("Due now: a dispatch worker sends it in a moment."))


# -- a journey's sends -------------------------------------------------------------------------


@dataclass(frozen=True)
class LateSends:
    """A journey step's messages still waiting past the late limit on one account."""

    node_id: str
    account_id: int
    count: int
    since: dt.datetime  # the earliest of them was due then
    wait: Wait


def journey_sends_late(*, journey_id: int, now: dt.datetime | None = None) -> list[LateSends]:
    """Per step and account: the journey's messages due for longer than ``QUEUE_STALE_AFTER_SECONDS``
    and still not gone (one aggregate query on the ``message_journey_waiting`` index), with why."""
    now = now or timezone.now()
    late_before = now - dt.timedelta(seconds=settings.QUEUE_STALE_AFTER_SECONDS)
    rows = list(
        Message.objects.filter(journey_id=journey_id, status__in=WAITING_STATUSES, due_at__lt=late_before)
        .values("node_id", "account_id")
        .annotate(
            count=Count("id"), since=Min("due_at"), held=Count("id", filter=Q(status=Message.Status.HELD))
        )
        .order_by("node_id", "account_id")
    )
    if not rows:
        return []
    facts = wait_facts(account_ids=[row["account_id"] for row in rows], now=now)
    return [
        LateSends(
            node_id=row["node_id"],
            account_id=row["account_id"],
            count=row["count"],
            since=row["since"],
            wait=_account_why(facts, row["account_id"], since=row["since"], held=bool(row["held"])),
        )
        for row in rows
    ]


def _account_why(facts: WaitFacts, account_id: int, *, since: dt.datetime, held: bool) -> Wait:
    """Why an account's due messages wait, said of the account rather than of one message."""
    account = facts.accounts[account_id]
    if held or account.account.status == ChannelAccount.Status.PAUSED:
        return _paused(account.account, facts.now)
    queue = _queue_words(facts)
    if queue is not None and queue.code == "no_worker":
        return queue
    rate = account.account.rate_per_second
    if account.due and _draining(account, facts.now) and account.due / rate >= 1:
        return Wait(
            "rate_limit",
            _(
                "The account “%(account)s” sends at most %(rate)s messages a second and %(count)s "
                "messages are due on it: at that rate the last goes in about %(eta)s."
            )
            % {
                "account": account.account.name,
                "rate": rate_words(rate),
                "count": count_words(account.due),
                "eta": duration_words(account.due / rate),
            },
        )
    return queue or _unexplained(since, facts.now)
