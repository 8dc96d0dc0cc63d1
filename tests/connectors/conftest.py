"""Messaging fixtures: customers with addresses, sandbox accounts of each kind."""

from __future__ import annotations

import pytest
from django.utils import timezone

from cdp.models import Customer, Identity
from connectors.accounts import account_create
from connectors.sandbox import pools_close

CALLBACK_SECRET = "sandbox-callback-secret-1"


@pytest.fixture(autouse=True)
def in_english():
    """Service-level texts are compared in English; pages are read in the language they are asked in."""
    from django.utils import translation

    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def sandbox_connections_closed():
    yield
    pools_close()  # the sandbox provider's own connections would keep the test database open


@pytest.fixture(autouse=True)
def realtime_on_redis(channel_layer):
    """Events recorded after a commit are published to open pages; here through Redis's layer."""


@pytest.fixture
def make_customer(db):
    def make(name="王芳", phone="+8613800138000", email="", openid="", traits=None) -> Customer:
        customer = Customer.objects.create(name=name, traits=traits or {"city": "杭州"})
        now = timezone.now()
        wechat = "wechat_openid:wx0000sandbox00000"
        for type_, value in (("phone", phone), ("email", email), (wechat, openid)):
            if value:
                Identity.objects.create(customer=customer, type=type_, value=value, first_seen_at=now)
        return customer

    return make


@pytest.fixture
def make_account(db):
    def make(kind="sandbox_sms", name="短信沙箱", rate=1000, **values) -> object:
        values.setdefault("callback_secret", CALLBACK_SECRET)
        return account_create(kind=kind, name=name, values=values, rate_per_second=rate)

    return make
