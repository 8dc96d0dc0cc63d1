"""Periodic work that cannot flood the queues: beat's entries expire after their interval (in the
rows django-celery-beat reads), a sweep or an account's dispatcher has at most one copy waiting, and
the copy is free to be queued again as soon as a real worker starts it."""

import datetime as dt
import json

import pytest
import redis
import time_machine
from django.conf import settings
from django_celery_beat.models import PeriodicTask

from cdp.beat import Scheduler
from cdp.celery import app as celery_app
from cdp.models import PendingWakeup
from connectors.dispatcher import dispatch_wake
from tests.processes import ProcessGroup, current_database_url, wait_until

NOW = dt.datetime(2027, 5, 17, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def broker(redis_url, monkeypatch):
    monkeypatch.setitem(celery_app.conf, "broker_url", redis_url)
    return redis.Redis.from_url(redis_url)


# django-celery-beat's scheduler closes the connection it finds: these run outside a test transaction.
@pytest.mark.django_db(transaction=True)
def test_every_beat_entry_is_stored_with_an_expiry_of_its_interval():
    Scheduler(app=celery_app)
    rows = {task.name: task for task in PeriodicTask.objects.all()}
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        assert rows[name].expire_seconds == int(entry["schedule"]), name
        assert rows[name].expires_ == int(entry["schedule"])


@pytest.mark.django_db(transaction=True)
def test_a_sweep_still_waiting_is_not_sent_again_and_its_message_expires(broker):
    scheduler = Scheduler(app=celery_app)
    entry = scheduler.schedule["dispatch-sweep"]
    with time_machine.travel(NOW, tick=False):
        for _ in range(5):
            scheduler.apply_async(entry, advance=False)
    assert broker.llen("dispatch") == 1
    message = json.loads(broker.lindex("dispatch", 0))
    assert dt.datetime.fromisoformat(message["headers"]["expires"]) == NOW + dt.timedelta(seconds=2)
    assert message["headers"]["cdp_wakeup"] == "beat:dispatch-sweep"

    # Not started within its expiry (a lost copy): the next tick may send a fresh one.
    with time_machine.travel(NOW + dt.timedelta(seconds=3), tick=False):
        PendingWakeup.objects.update(expires_at=NOW - dt.timedelta(seconds=1))
        scheduler.apply_async(entry, advance=False)
    assert broker.llen("dispatch") == 2


def test_an_accounts_dispatcher_is_woken_once_however_many_commits_ask(db, broker):
    for _ in range(20):
        dispatch_wake(account_id=41)
    dispatch_wake(account_id=42)
    assert broker.llen("dispatch") == 2


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_wake_up_can_be_queued_again_once_a_real_worker_started_it(broker, redis_url, tmp_path):
    from connectors.tasks import dispatch_account

    dispatch_wake(account_id=41)
    dispatch_wake(account_id=41)
    assert broker.llen("dispatch") == 1
    group = ProcessGroup({"DATABASE_URL": current_database_url(), "CELERY_BROKER_URL": redis_url}, tmp_path)
    try:
        group.start(
            "worker", "celery", "-A", "cdp", "worker", "--pool", "solo", "-Q", "dispatch", "-l", "INFO"
        )
        wait_until(
            lambda: not PendingWakeup.objects.exists(), timeout=60, what="the worker to start the wake-up"
        )
        dispatch_wake(account_id=41)
        wait_until(
            lambda: group.log("worker").count(f"{dispatch_account.name}[") >= 4,  # received, succeeded, twice
            timeout=30,
            what="the second wake-up to run",
        )
    finally:
        group.stop_all()
    assert broker.llen("dispatch") == 0
