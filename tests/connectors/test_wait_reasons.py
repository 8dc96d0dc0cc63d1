"""A message that has not gone yet says why, on the Messages list and on its own page: its account is
paused, it is held until a retry, the account's rate limit has others due before it, the dispatch
workers are behind or missing (read from a real Redis broker), or nothing explains it."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
import time_machine
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from cdp.celery import app as celery_app
from connectors.accounts import account_pause
from connectors.models import Message, RateBucket
from connectors.services import message_enqueue

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {"template_code": "SMS_1", "params": {"text": "您好"}, "text": "您好"}


@pytest.fixture
def clock():
    with time_machine.travel(timezone.now().replace(microsecond=0), tick=False) as traveller:
        yield traveller


@pytest.fixture
def analyst(client, user_in_role):
    client.force_login(user_in_role("Analyst"))
    return client


@pytest.fixture
def admin(client_factory, user_in_role):
    client = client_factory()
    client.force_login(user_in_role("Admin"))
    return client


def enqueue(account, customer, key: str) -> Message:
    message, _created = message_enqueue(account=account, customer=customer, idempotency_key=key, body=BODY)
    return message


def row_wait(client, message: Message, language: str = "en") -> str:
    """The words under the status of the message's row on the Messages list."""
    page = client.get(reverse("messages"), HTTP_ACCEPT_LANGUAGE=language).content.decode()
    row = re.search(rf'<tr data-message="{message.pk}">(.*?)</tr>', page, re.S).group(1)
    found = re.search(r'<div class="wait-reason[^"]*" data-wait="(\w+)">(.*?)</div>', row, re.S)
    return found and (found.group(1), html.unescape(re.sub(r"\s+", " ", found.group(2)).strip()))


def page_wait(client, message: Message, language: str = "en") -> str:
    """The "why it has not gone yet" box on the message's page."""
    page = client.get(reverse("message", args=[message.pk]), HTTP_ACCEPT_LANGUAGE=language).content.decode()
    found = re.search(r'<div [^>]*id="message-wait" data-wait="(\w+)"[^>]*>(.*?)</div>', page, re.S)
    if not found:
        return None
    text = re.sub(r"<[^>]+>", " ", found.group(2))
    return found.group(1), html.unescape(re.sub(r"\s+", " ", text).strip())


def test_a_message_due_a_moment_ago_is_about_to_go(analyst, make_account, make_customer, clock):
    message = enqueue(make_account(), make_customer(), "due-now")
    words = "Due now: a dispatch worker sends it in a moment."
    assert row_wait(analyst, message) == ("due", words)
    assert page_wait(analyst, message) == ("due", f"Why it has not gone yet {words}")


def test_a_paused_account_says_since_when_and_why(analyst, admin, make_account, make_customer, clock):
    account = make_account(name="短信沙箱")
    message = enqueue(account, make_customer(), "paused")
    paused_at = timezone.localtime()
    account_pause(account_id=account.pk, reason="The provider says the balance is used up.")
    clock.shift(dt.timedelta(minutes=5))

    words = (
        f"The account “短信沙箱” has been paused since {paused_at:%H:%M:%S}: The provider says the "
        "balance is used up. It goes once an admin resumes the account."
    )
    assert row_wait(analyst, message) == ("paused", words)
    assert page_wait(analyst, message) == ("paused", f"Why it has not gone yet {words}")
    # Admins are shown the way to the account; in Chinese, the same facts.
    assert page_wait(admin, message)[1].endswith("Open the account to resume it")
    chinese = page_wait(admin, message, "zh-hans")[1]
    assert "账号“短信沙箱”" in chinese and f"{paused_at:%H:%M:%S}" in chinese and "恢复" in chinese


def test_a_message_held_for_a_retry_says_when_the_next_attempt_is(
    analyst, make_account, make_customer, clock
):
    message = enqueue(make_account(), make_customer(), "retry")
    # What the dispatcher records after a provider's answer worth retrying (connectors.dispatcher).
    retry_at = timezone.now() + dt.timedelta(seconds=40)
    Message.objects.filter(pk=message.pk).update(
        attempts=1, due_at=retry_at, reason="retry: HTTP 503 from the provider"
    )

    words = (
        "The provider did not take it (“HTTP 503 from the provider”): attempt 2 is at "
        f"{timezone.localtime(retry_at):%H:%M:%S}, in 40 seconds."
    )
    assert row_wait(analyst, message) == ("held_until", words)
    assert page_wait(analyst, message) == ("held_until", f"Why it has not gone yet {words}")


def test_the_rate_limit_says_how_many_are_ahead_and_when_it_goes(analyst, make_account, make_customer, clock):
    account = make_account(name="微信模板", rate=2)
    customer = make_customer()
    messages = [enqueue(account, customer, f"burst-{number}") for number in range(61)]
    # A dispatcher has just taken the bucket's last token: the limit is spent.
    RateBucket.objects.filter(account=account).update(tokens=0.2, refilled_at=timezone.now())

    last = messages[-1]
    words = (
        "The account “微信模板” sends at most 2 messages a second and 60 messages on it are due before "
        "this one: at that rate it goes in about 30 seconds."
    )
    assert row_wait(analyst, last) == ("rate_limit", words)
    assert page_wait(analyst, last) == ("rate_limit", f"Why it has not gone yet {words}")
    assert page_wait(analyst, messages[0])[0] == "due"  # the first in line goes next


def test_the_list_reads_the_accounts_once_however_many_rows(analyst, make_account, make_customer, clock):
    from django.db import connection as default_connection
    from django.test.utils import CaptureQueriesContext

    customer = make_customer()
    accounts = [make_account(name=f"账号{n}") for n in range(3)]

    def queries_for_the_list() -> int:
        with CaptureQueriesContext(default_connection) as queries:
            assert analyst.get(reverse("messages")).status_code == 200
        return len(queries)

    for number in range(3):
        enqueue(accounts[number], customer, f"few-{number}")
    few = queries_for_the_list()
    for number in range(45):
        enqueue(accounts[number % 3], customer, f"many-{number}")
    assert queries_for_the_list() == few  # the same queries for 48 rows as for 3


@pytest.fixture
def redis_broker(redis_url, monkeypatch):
    """Wake-ups go to a real Redis broker that no worker reads: the dispatch queue only grows."""
    monkeypatch.setattr(celery_app.conf, "broker_url", redis_url)
    return redis_url


def test_the_dispatch_queues_backlog_says_the_workers_are_behind_then_missing(
    analyst, admin, make_account, make_customer, redis_broker, clock
):
    account, customer = make_account(), make_customer()
    first = enqueue(account, customer, "backlog-1")  # its wake-up waits in the dispatch queue
    second_account = make_account(name="邮件沙箱", kind="sandbox_email")
    enqueue(second_account, make_customer(name="李雷", phone="+8613900139000", email="li@example.com"), "b-2")

    clock.shift(dt.timedelta(seconds=20))
    behind = "The dispatch workers are behind: 2 tasks wait in the dispatch queue, the oldest for 20 seconds."
    assert row_wait(analyst, first) == ("workers_behind", behind)
    assert page_wait(analyst, first) == ("workers_behind", f"Why it has not gone yet {behind}")

    clock.shift(dt.timedelta(minutes=3))
    missing = (
        "No dispatch worker seems to be taking tasks: 2 wait in the dispatch queue, the oldest for 3 "
        "minutes. An admin can see what is wrong at /healthz."
    )
    assert row_wait(analyst, first) == ("no_worker", missing)
    assert page_wait(analyst, first) == ("no_worker", f"Why it has not gone yet {missing}")
    # Admins get the link to the health check; in Chinese too.
    assert page_wait(admin, first) == (
        "no_worker",
        f"Why it has not gone yet {missing} Open the health check (/healthz)",
    )
    assert "似乎没有发送进程在处理任务" in page_wait(admin, first, "zh-hans")[1]


def test_a_long_wait_nothing_explains_points_to_the_health_check(analyst, make_account, make_customer, clock):
    message = enqueue(make_account(), make_customer(), "stuck")
    # Nothing took from the account's bucket since it was made, and this broker cannot tell its backlog.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE connectors_ratebucket SET refilled_at = %s", [timezone.now()])
    clock.shift(dt.timedelta(minutes=2))

    words = (
        "Due for 2 minutes and nothing here explains the wait: no dispatch worker seems to be taking this "
        "account's messages. An admin can see what is wrong at /healthz."
    )
    assert row_wait(analyst, message) == ("unexplained", words)
    assert page_wait(analyst, message) == ("unexplained", f"Why it has not gone yet {words}")


def test_a_sent_message_says_nothing_about_waiting(analyst, make_account, make_customer, clock):
    from connectors.dispatcher import dispatch_account_run

    message = enqueue(make_account(), make_customer(), "gone")
    dispatch_account_run(account_id=message.account_id)
    message.refresh_from_db()
    assert message.status == "sent"
    assert row_wait(analyst, message) is None
    assert page_wait(analyst, message) is None
