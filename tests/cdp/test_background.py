"""A real Celery worker and beat: beat's heartbeat runs on the worker and /healthz turns green."""

import pytest
from django.urls import reverse

from cdp.celery import app as celery_app
from cdp.models import BeatHeartbeat
from tests.processes import ProcessGroup, current_database_url, wait_until


@pytest.fixture
def background(redis_url, tmp_path, transactional_db, monkeypatch):
    monkeypatch.setattr(celery_app.conf, "broker_url", redis_url)
    group = ProcessGroup(
        {
            "DATABASE_URL": current_database_url(),
            "CELERY_BROKER_URL": redis_url,
            "HEARTBEAT_INTERVAL_SECONDS": "1",
        },
        tmp_path,
    )
    yield group
    group.stop_all()


def test_beat_schedules_the_heartbeat_and_a_worker_runs_it(client, background):
    background.start(
        "worker", "celery", "-A", "cdp", "worker", "--pool", "solo", "-Q", "default", "--loglevel", "INFO"
    )
    background.start("beat", "celery", "-A", "cdp", "beat", "--loglevel", "INFO")
    assert client.get(reverse("healthz")).status_code == 503

    first = wait_until(
        lambda: BeatHeartbeat.objects.filter(pk=1).first(), timeout=60, what="the first heartbeat"
    )
    wait_until(
        lambda: BeatHeartbeat.objects.get(pk=1).beat_at > first.beat_at, timeout=30, what="a second heartbeat"
    )
    response = client.get(reverse("healthz"))
    assert response.status_code == 200, response.json()
    assert "Task cdp.tasks.heartbeat" in background.log("worker")
