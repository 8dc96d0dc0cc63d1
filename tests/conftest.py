"""Shared fixtures: users per role, and the real services (Redis) the suite runs against."""

import os

import pytest
import redis
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType

from cdp.access import sync_role_groups
from tests.factories import PASSWORD, UserFactory

ROLES = ("Admin", "Marketer", "Sales", "Analyst")


def service_missing(what: str) -> None:
    """Outside CI a missing service skips the test; in CI it fails it, as nothing may be skipped there."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not reachable, and CI must run every test.")
    pytest.skip(f"{what} is not reachable")


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def user_in_role(db):
    def make(role: str | None, **fields):
        # Transactional tests empty the tables, taking the migration-made role groups with them.
        if role and not Group.objects.filter(name=role).exists():
            sync_role_groups(Group, Permission, ContentType)
        return UserFactory(role=role, **fields)

    return make


@pytest.fixture
def admin_user(user_in_role):
    return user_in_role("Admin", username="boss")


@pytest.fixture
def redis_url(worker_id) -> str:
    """A Redis database of its own for each xdist worker, emptied before the test."""
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
    if base.rsplit("/", 1)[-1].isdigit():
        base = base.rsplit("/", 1)[0]
    # Two test runs on one machine (two checkouts) keep apart by giving each its own first database.
    first = int(os.environ.get("CDP_TEST_REDIS_FIRST_DB", "1"))
    index = first if worker_id == "master" else first + int(worker_id.removeprefix("gw"))
    url = f"{base}/{index}"
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.flushdb()
    except redis.ConnectionError:
        service_missing(f"Redis at {base}")
    return url


@pytest.fixture
def client_factory():
    """Fresh browsers-worth of cookies: several people using the product at once."""
    from django.test import Client

    return Client


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Close connections after each use, so threads (Channels, live servers) leave none open
    that would keep the test database from being dropped."""
    from django.db import connections

    for alias in connections:
        connections[alias].settings_dict["CONN_MAX_AGE"] = 0


@pytest.fixture(autouse=True)
def in_process_broker(monkeypatch):
    """Tasks that services queue go to kombu's in-memory transport: tests call the services they
    would run directly, and tests about real workers set their own broker."""
    from cdp.celery import app as celery_app

    monkeypatch.setitem(celery_app.conf, "broker_url", "memory://")
    monkeypatch.setitem(celery_app.conf, "broker_transport_options", {})
    # Celery keeps its connection pool from the first task a process sends: without this, a test that
    # sets a real broker would still send to whatever broker an earlier test used.
    _celery_pools_forget(celery_app)
    yield
    _celery_pools_forget(celery_app)


def _celery_pools_forget(celery_app) -> None:
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def channel_layer(settings, redis_url):
    """The production channel layer (Redis), on the test's own database; the quickstart's
    PostgreSQL layer is proven across processes by the browser tests, which run the real server."""
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [redis_url]}}
    }
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def product_language():
    """Each test starts in the product's language: a request asking for another (Accept-Language)
    leaves that one active in the thread, as Django's locale middleware does, and a later test that
    reads a translated text outside a request would get it in English."""
    from django.conf import settings
    from django.utils import translation

    with translation.override(settings.LANGUAGE_CODE):
        yield


@pytest.fixture(autouse=True)
def tracking_limits_fresh(settings):
    """Each test starts with full rate-limit buckets, kept in its own process (tests of the shared
    limiter set REDIS_URL to their own Redis database)."""
    from cdp.tracking_limits import limits_forget

    settings.REDIS_URL = None
    limits_forget()
    yield
    limits_forget()


@pytest.fixture(autouse=True)
def cache_of_its_own(settings, request):
    """Each test starts with an empty cache of its own (callback nonces live there): never the
    machine's shared Redis database, where another run's nonces would look like replays."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": request.node.nodeid,
        }
    }
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def source(db):
    from cdp.services import source_create

    return source_create(name="官网 Website", kind="web")


@pytest.fixture
def server_source(db):
    """A trusted source (the company's own server): it may merge customers by phone, email, ID
    number and user id, subscribe them and send any event name."""
    from cdp.services import source_create

    return source_create(name="ERP server", kind="server")
