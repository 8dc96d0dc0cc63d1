"""The quickstart's own Redis (cdp.localredis) as the broker: tasks queued before a restart of the
server are all run after it, first in first out, and a task in the hands of a worker killed with
SIGKILL goes back to its queue and is run by the next worker, with nobody waking it again."""

from __future__ import annotations

import re
import signal

import pytest

from cdp import localredis
from cdp.celery import app as celery_app
from cdp.models import Customer
from connectors.dispatcher import dispatch_wake
from connectors.models import Message
from connectors.services import messages_enqueue_many
from tests.processes import ProcessGroup, current_database_url, wait_until

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def embedded(tmp_path, monkeypatch):
    """A server of its own (short path: a Unix socket's name is limited to about 100 bytes)."""
    directory = tmp_path / "r"
    server = localredis.server_start(stop_at_exit=False, directory=directory)
    monkeypatch.setitem(celery_app.conf, "broker_url", localredis.broker_url(directory))
    state = {"server": server, "directory": directory}
    yield state
    localredis.server_stop(state["server"])


def worker(group: ProcessGroup, name: str, queue: str):
    return group.start(
        name, "celery", "-A", "cdp", "worker", "--pool", "solo", "-Q", queue, "-n", f"{name}@%h", "-l", "INFO"
    )


def test_tasks_queued_across_a_restart_of_the_server_all_run_in_order(embedded, tmp_path):
    from connectors.tasks import dispatch_account

    sent = [dispatch_account.apply_async((900_000 + index,), queue="dispatch").id for index in range(300)]
    localredis.server_stop(embedded["server"])  # Ctrl-C on `make run`: Redis writes its file and stops
    embedded["server"] = localredis.server_start(stop_at_exit=False, directory=embedded["directory"])
    sent += [dispatch_account.apply_async((900_300 + index,), queue="dispatch").id for index in range(300)]

    group = ProcessGroup(
        {
            "DATABASE_URL": current_database_url(),
            "CELERY_BROKER_URL": localredis.broker_url(embedded["directory"]),
        },
        tmp_path,
    )
    try:
        worker(group, "after", "dispatch")
        wait_until(
            lambda: group.log("after").count("succeeded in") >= len(sent),
            timeout=120,
            what="every task to run",
        )
    finally:
        group.stop_all()
    received = re.findall(r"dispatch_account\[([0-9a-f-]+)\] received", group.log("after"))
    assert received == sent


def test_a_task_held_by_a_killed_worker_is_run_by_the_next_one(embedded, tmp_path, make_account):
    # One message a second, each taking the provider 4 s to answer: the worker is mid-send when killed.
    account = make_account(latency_ms=4000, receipt_delay_seconds=86400, rate=1)
    customer = Customer.objects.create(name="测试")
    messages_enqueue_many(
        account=account,
        items=[(f"k-{index}", customer.pk, f"+8613800{index:06d}", {"text": "hi"}) for index in range(4)],
    )
    group = ProcessGroup(
        {
            "DATABASE_URL": current_database_url(),
            "CELERY_BROKER_URL": localredis.broker_url(embedded["directory"]),
            "BROKER_VISIBILITY_TIMEOUT_SECONDS": "5",
            "DISPATCH_LEASE_SECONDS": "60",
        },
        tmp_path,
    )
    try:
        worker(group, "first", "dispatch")
        dispatch_wake(account_id=account.pk)
        wait_until(
            lambda: Message.objects.filter(status="sending").exists(),
            timeout=60,
            what="the first send to start",
        )
        group.kill("first", signal.SIGKILL)
        assert Message.objects.filter(status="queued").count() == 3

        worker(group, "second", "dispatch")  # nobody wakes the account again
        wait_until(
            lambda: not Message.objects.filter(status="queued").exists(),
            timeout=90,
            what="the killed worker's task to be run again",
        )
    finally:
        group.stop_all()
    assert "dispatch_account" in group.log("second")
    # The one in the provider's hands when the worker died is in doubt, never resent; the rest went.
    assert Message.objects.filter(status="sent").count() >= 2
    assert Message.objects.filter(status="sending").count() <= 1
