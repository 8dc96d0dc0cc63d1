"""Real dispatch workers (Celery processes on Redis): two never send the same message, and a worker
killed with SIGKILL at random moments loses nothing, sends nothing twice and leaves every message
it had in hand ``unknown``. The full-size run (20 rounds over 10,000 messages) is
``bench/dispatch_faults.py``; this one is smaller so the suite stays quick."""

import os
import random
import re
import signal
import time

import pytest
from django.db.models import Count

from cdp.celery import app as celery_app
from cdp.models import Customer
from connectors.dispatcher import leases_expire
from connectors.models import Message, SandboxDelivery
from connectors.services import messages_enqueue_many
from tests.processes import ProcessGroup, current_database_url, wait_until

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
LEASE = 3


@pytest.fixture
def workers(redis_url, tmp_path, transactional_db, monkeypatch):
    monkeypatch.setitem(celery_app.conf, "broker_url", redis_url)
    group = ProcessGroup(
        {
            "DATABASE_URL": current_database_url(),
            "CELERY_BROKER_URL": redis_url,
            "REDIS_URL": redis_url,
            "DISPATCH_LEASE_SECONDS": str(LEASE),
        },
        tmp_path,
    )
    yield group
    group.stop_all()


def start_worker(group, name):
    group.start(
        name, "celery", "-A", "cdp", "worker", "--pool", "solo", "-Q", "dispatch", "-n", f"{name}@%h",
        "--loglevel", "INFO",
    )  # fmt: skip


def outbox(account, count, prefix="m"):
    customer = Customer.objects.create(name="压测")
    items = [
        (f"{prefix}-{index}", customer.pk, f"+86138{index:08d}", {"text": "hi"}) for index in range(count)
    ]
    messages_enqueue_many(account=account, items=items)


def kick(account, times=2):
    from connectors.tasks import dispatch_account

    for _ in range(times):
        dispatch_account.delay(account.pk)


def pending():
    return Message.objects.filter(status__in=["queued", "sending"]).count()


def test_two_workers_never_send_the_same_message(workers, make_account):
    account = make_account(latency_ms=20, receipt_delay_seconds=86400, rate=100_000)
    outbox(account, 3000)
    start_worker(workers, "one")
    start_worker(workers, "two")
    for name in ("one", "two"):  # both listening before the work starts, or one may drain it alone
        wait_until(
            lambda name=name: "ready." in workers.log(name), timeout=60, what=f"worker {name} to start"
        )
    kick(account, times=6)
    wait_until(lambda: kick(account, 1) or not pending(), timeout=120, what="the outbox to empty")
    assert Message.objects.filter(status="sent").count() == 3000
    assert SandboxDelivery.objects.count() == 3000
    assert not SandboxDelivery.objects.filter(requests__gt=1).exists()
    for name in ("one", "two"):
        claimed = [
            int(n)
            for n in re.findall(r"dispatch_account\[[^\]]+\] succeeded in [\d.]+s: (\d+)", workers.log(name))
        ]
        assert sum(claimed) > 0, f"worker {name} sent nothing: the test did not exercise two workers"


def test_workers_killed_at_random_moments_lose_nothing_and_resend_nothing(workers, make_account):
    rounds, count = int(os.environ.get("FAULT_ROUNDS", "5")), int(os.environ.get("FAULT_MESSAGES", "2000"))
    account = make_account(latency_ms=20, receipt_delay_seconds=86400, rate=100_000)
    outbox(account, count)
    rng = random.Random(7)
    for number in range(rounds):
        name = f"round{number}"
        start_worker(workers, name)
        kick(account)
        wait_until(lambda name=name: "ready." in workers.log(name), timeout=60, what="the worker to start")
        time.sleep(rng.uniform(0.2, 1.5))  # a random moment in the worker's work, on purpose
        workers.kill(name, signal.SIGKILL)
    time.sleep(LEASE + 0.5)  # let the killed workers' leases run out
    leases_expire()
    start_worker(workers, "last")
    wait_until(lambda: kick(account, 1) or not pending(), timeout=180, what="the last worker to finish")
    time.sleep(LEASE + 0.5)
    leases_expire()

    statuses = dict(Message.objects.values_list("status").annotate(n=Count("id")))
    assert sum(statuses.values()) == count  # none lost
    assert set(statuses) <= {"sent", "unknown"}, statuses
    assert not SandboxDelivery.objects.filter(requests__gt=1).exists()  # none sent twice
    delivered = dict(SandboxDelivery.objects.values_list("idempotency_key", "provider_message_id"))
    for key, status, provider_id in Message.objects.values_list(
        "idempotency_key", "status", "provider_message_id"
    ):
        if status == "sent":
            assert delivered[key] == provider_id
        # the provider has it but we never recorded the answer: in doubt, and shown as such
        elif key in delivered:
            assert status == "unknown"
    assert statuses.get("unknown", 0) > 0, "no kill landed mid-batch: the test proved nothing"


def test_the_rate_limit_holds_across_two_workers(workers, make_account):
    import datetime as dt

    from django.db.models import Max, Min

    rate = 100
    account = make_account(latency_ms=20, receipt_delay_seconds=86400, rate=rate)
    outbox(account, rate * 14)
    start_worker(workers, "one")
    start_worker(workers, "two")
    kick(account, times=4)
    wait_until(lambda: kick(account, 1) or not pending(), timeout=120, what="the outbox to empty")
    sent = Message.objects.filter(status="sent")
    span = sent.aggregate(first=Min("sent_at"), last=Max("sent_at"))
    start, end = span["first"] + dt.timedelta(seconds=3), span["last"] - dt.timedelta(seconds=3)
    measured = sent.filter(sent_at__gte=start, sent_at__lt=end).count() / (end - start).total_seconds()
    assert abs(measured - rate) / rate < 0.05, measured
    for name in ("one", "two"):
        assert re.search(r"succeeded in [\d.]+s: [1-9]", workers.log(name)), f"worker {name} sent nothing"
