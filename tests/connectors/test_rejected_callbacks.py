"""Review finding 10: anyone can post to /hooks/<account>/, so a rejected callback is kept short (its
hash, size and first 2 KB), a client address that keeps sending them is answered 429, and they are
deleted after their retention."""

import datetime as dt
import hashlib

import pytest
import time_machine
from django.conf import settings
from django.urls import reverse

from connectors.models import InboundCallback
from connectors.tasks import callbacks_rejected_expire
from tests.connectors.conftest import CALLBACK_SECRET
from tests.connectors.kinds.conftest import sandbox_headers

pytestmark = pytest.mark.django_db


def post(client, account, body: bytes, *, signed: bool = False, address: str = "203.0.113.7"):
    headers = sandbox_headers(body, CALLBACK_SECRET) if signed else {"X-Sandbox-Signature": "0" * 64}
    return client.post(
        reverse("connector_inbound", args=[account.pk]),
        data=body,
        content_type="application/json",
        headers=headers,
        REMOTE_ADDR=address,
    )


def test_a_rejected_callback_keeps_only_its_hash_size_and_first_2_kb(client, make_account):
    account = make_account()
    body = b"[" + b'{"biz_id":"1","success":true},' * 33_000 + b"{}]"  # about 1 MB
    response = post(client, account, body)
    assert (response.status_code, response.content) == (400, b"signature does not match")
    stored = InboundCallback.objects.get()
    assert (stored.accepted, stored.body_size, stored.body_hash) == (
        False,
        len(body),
        hashlib.sha256(body).hexdigest(),
    )
    assert stored.body == body[:2048].decode()


def test_an_address_sending_rejected_callbacks_is_answered_429_and_nothing_more_is_stored(
    client, make_account, settings
):
    settings.CALLBACK_REJECTS_PER_MINUTE = 3
    account = make_account()
    answers = [post(client, account, f"forged {n}".encode()).status_code for n in range(4)]
    assert answers == [400, 400, 400, 429]
    refused = post(client, account, b"forged again")
    assert refused.status_code == 429
    assert refused["Retry-After"] == "20"
    assert refused.content == b"Too many rejected callbacks from this address; send again in 20 s."
    assert InboundCallback.objects.count() == 3
    # Another address is not held back by it, nor is a callback that is signed right.
    assert post(client, account, b"forged elsewhere", address="198.51.100.1").status_code == 400
    assert post(client, account, b'[{"biz_id":"1","success":true}]', signed=True).status_code == 200


def test_rejected_callbacks_are_deleted_after_their_retention_and_accepted_ones_kept(client, make_account):
    account = make_account()
    body = b'[{"biz_id":"1","success":true}]'
    start = dt.datetime(2026, 11, 1, 10, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False) as clock:
        post(client, account, b"forged")
        post(client, account, body, signed=True)
        clock.shift(dt.timedelta(days=settings.CALLBACK_REJECTED_RETENTION_DAYS, seconds=1))
        post(client, account, b"forged today")
        assert callbacks_rejected_expire() == 1
    assert sorted(InboundCallback.objects.values_list("accepted", "body")) == [
        (False, "forged today"),
        (True, body.decode()),
    ]
    entry = settings.CELERY_BEAT_SCHEDULE["callbacks-rejected-expire"]
    assert (entry["task"], entry["options"]["expire_seconds"]) == (
        "connectors.tasks.callbacks_rejected_expire",
        3600,
    )
