"""A burst of commits queues one matching task and one segment refresh, not one each: the first task
to start takes every waiting request, and thousands of empty copies once held the sandbox receipts
(same worker as the segments queue) and the journeys' fallbacks behind them for minutes under load
(``bench/task_latency.py``). Once a worker starts the task, the next commit queues another."""

import pytest
import redis

from cdp.celery import app as celery_app
from cdp.wakeups import wakeup_started
from journeys.models import MatchRequest
from journeys.tasks import events_arrived
from segments.models import RefreshRequest
from segments.tasks import refresh_requested
from tests.journeys.conftest import track

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


class Started:
    """What a worker's request holds as it starts a task: the message's headers as attributes."""

    def __init__(self, message: dict):
        for name, value in message["headers"].items():
            setattr(self, name, value)


def test_a_burst_of_commits_queues_one_matching_task_and_one_refresh(redis_url, monkeypatch, make_customer):
    import json

    monkeypatch.setitem(celery_app.conf, "broker_url", redis_url)
    broker = redis.Redis.from_url(redis_url)
    customers = [make_customer(name=f"客户{number}", phone=f"+861380013800{number}") for number in range(5)]
    for customer in customers:
        track(customer, "Product Viewed")  # five ingest commits, one after another

    assert broker.llen("matching") == 1
    assert broker.llen("segments") == 1
    assert MatchRequest.objects.count() == RefreshRequest.objects.count() == 5

    # A worker starts both tasks: each takes every waiting request.
    for queue, task in (("matching", events_arrived), ("segments", refresh_requested)):
        message = json.loads(broker.rpop(queue))
        assert message["headers"]["task"] == task.name
        wakeup_started(Started(message))
        task()
    assert not MatchRequest.objects.exists()
    assert not RefreshRequest.objects.exists()

    track(customers[0], "Product Viewed")  # arrives after they started: woken again
    assert broker.llen("matching") == 1
    assert broker.llen("segments") == 1
