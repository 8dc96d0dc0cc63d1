"""/healthz reports the database, the broker, the queues' backlog and beat's last tick; 200 only when
all are fine."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from cdp.celery import app as celery_app
from cdp.services import heartbeat_record


@pytest.fixture
def broker(redis_url, monkeypatch):
    monkeypatch.setattr(celery_app.conf, "broker_url", redis_url)
    return redis_url


def test_all_green_when_beat_ticked_recently(client, admin_user, broker):
    heartbeat_record()
    client.force_login(admin_user)  # operators see the details
    response = client.get(reverse("healthz"))
    body = response.json()
    assert response.status_code == 200
    assert body["ok"] is True
    assert body["checks"]["database"]["detail"].startswith("PostgreSQL")
    assert body["checks"]["broker"] == {"ok": True, "detail": "redis"}
    assert body["checks"]["beat"]["age_seconds"] < 5


def test_anonymous_callers_get_the_verdict_without_details(client, db, broker):
    heartbeat_record()
    body = client.get(reverse("healthz")).json()
    assert body["ok"] is True
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["broker"] == {"ok": True}
    assert set(body["checks"]["beat"]) == {"ok", "age_seconds", "last_tick"}


def test_unhealthy_before_beat_ever_ticked(client, admin_user, broker):
    client.force_login(admin_user)
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json()["checks"]["beat"] == {
        "ok": False,
        "detail": "no heartbeat yet",
        "age_seconds": None,
    }


def test_unhealthy_when_beat_stopped_ticking(client, admin_user, broker, settings):
    heartbeat_record()
    client.force_login(admin_user)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.BEAT_STALE_AFTER_SECONDS + 30)
    with time_machine.travel(later):
        response = client.get(reverse("healthz"))
    beat = response.json()["checks"]["beat"]
    assert response.status_code == 503
    assert beat["ok"] is False
    assert beat["detail"].startswith("stale")
    assert beat["age_seconds"] >= settings.BEAT_STALE_AFTER_SECONDS + 30


def test_unhealthy_when_the_broker_is_down(client, admin_user, monkeypatch):
    heartbeat_record()
    client.force_login(admin_user)
    monkeypatch.setattr(celery_app.conf, "broker_url", "redis://127.0.0.1:1/0")
    response = client.get(reverse("healthz"))
    broker = response.json()["checks"]["broker"]
    assert response.status_code == 503
    assert broker["ok"] is False
    assert "redis" in broker["detail"]


def test_a_queue_whose_oldest_task_waits_too_long_turns_health_red_and_is_named(
    client, admin_user, broker, settings
):
    """No worker takes the dispatch queue: once its oldest task is older than the limit, /healthz
    says 503 and names the queue, while the others stay fine."""
    from connectors.tasks import dispatch_account

    queued_at = dt.datetime(2027, 3, 1, 9, 0, tzinfo=dt.UTC)
    with time_machine.travel(queued_at, tick=False):
        client.force_login(admin_user)
        heartbeat_record()
        dispatch_account.delay(7)
        dispatch_account.delay(8)
        body = client.get(reverse("healthz")).json()
    assert body["checks"]["queues"]["ok"] is True
    assert body["checks"]["queues"]["backlog"]["dispatch"] == {"waiting": 2, "oldest_seconds": 0.0}

    later = queued_at + dt.timedelta(seconds=settings.QUEUE_STALE_AFTER_SECONDS + 5)
    with time_machine.travel(later, tick=False):
        heartbeat_record()
        response = client.get(reverse("healthz"))
    queues = response.json()["checks"]["queues"]
    assert response.status_code == 503
    assert queues["ok"] is False
    assert queues["stale"] == ["dispatch"]
    assert queues["detail"] == f"oldest task over {settings.QUEUE_STALE_AFTER_SECONDS}s in: dispatch"
    assert queues["backlog"]["dispatch"]["oldest_seconds"] == settings.QUEUE_STALE_AFTER_SECONDS + 5
    assert queues["backlog"]["engine"] == {"waiting": 0, "oldest_seconds": None}


def test_a_broker_that_cannot_tell_its_backlog_age_leaves_health_green(client, admin_user, monkeypatch):
    monkeypatch.setattr(celery_app.conf, "broker_url", "memory://")
    heartbeat_record()
    client.force_login(admin_user)
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.json()["checks"]["queues"]["detail"] == "the broker does not tell the backlog's age"
