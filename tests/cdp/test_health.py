"""/healthz reports the database, the broker and beat's last tick; 200 only when all are fine."""

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


def test_the_quickstart_broker_fails_when_its_folder_is_gone(client, admin_user, monkeypatch, tmp_path):
    heartbeat_record()
    client.force_login(admin_user)
    missing = str(tmp_path / "gone")
    monkeypatch.setattr(celery_app.conf, "broker_url", "filesystem://")
    monkeypatch.setitem(
        celery_app.conf, "broker_transport_options", {"data_folder_in": missing, "control_folder": missing}
    )
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["detail"] == f"filesystem: not writable: {missing}, {missing}"
