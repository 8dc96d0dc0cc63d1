"""Receipts come back through the real inbound URL, signed as each provider signs; they move the
message and become events on the customer's timeline. Links and unsubscribes too."""

import hashlib
import hmac
import json
import secrets
import time
from urllib.parse import urlencode

import pytest
import redis
from django.urls import reverse

from cdp.models import Consent, Event
from connectors.dispatcher import dispatch_account_run
from connectors.models import InboundCallback, Message, TrackedLink
from connectors.sandbox import receipts_post
from connectors.services import message_enqueue
from tests.connectors.conftest import CALLBACK_SECRET
from tests.connectors.kinds.conftest import sandbox_headers
from tests.fakes import wechat as wechat_peer

pytestmark = pytest.mark.django_db(transaction=True)


def via(client):
    """Posts the sandbox's callbacks through Django's full request path (URL, middleware, view)."""

    def post(url, callback):
        path = url.split("://", 1)[1].split("/", 1)[1]
        query = f"?{urlencode(callback.query)}" if callback.query else ""
        extra = {
            f"HTTP_{key.upper().replace('-', '_')}": value for key, value in (callback.headers or {}).items()
        }
        response = client.post(
            f"/{path}{query}", data=callback.body, content_type=callback.content_type, **extra
        )
        return response.status_code

    return post


def sent(account, customer, key="k1", body=None):
    body = body or {"template_code": "SMS_1", "text": "您好 https://shop.example/p/1?x=1"}
    message, _ = message_enqueue(account=account, customer=customer, idempotency_key=key, body=body)
    dispatch_account_run(account_id=account.pk, budget_seconds=5)
    message.refresh_from_db()
    return message


def test_a_delivery_report_marks_the_message_delivered_once(client, make_account, make_customer):
    account, customer = make_account(receipt_delay_seconds=0), make_customer()
    message = sent(account, customer)
    assert receipts_post(post=via(client)) == 1
    message.refresh_from_db()
    assert message.status == "delivered"
    assert message.delivered_at is not None
    assert Event.objects.filter(customer=customer, name="message_delivered").count() == 1
    stored = InboundCallback.objects.get()
    assert json.loads(stored.body)[0]["biz_id"] == message.provider_message_id
    assert stored.receipt_count == 1

    # The provider posts the same report again (signed afresh): stored once, applied once.
    headers = sandbox_headers(stored.body.encode(), CALLBACK_SECRET)
    replay = client.post(
        reverse("connector_inbound", args=[account.pk]),
        data=stored.body.encode(),
        content_type="application/json",
        headers=headers,
    )
    assert replay.status_code == 200
    assert Event.objects.filter(customer=customer, name="message_delivered").count() == 1


def test_a_failure_report_fails_the_message_with_the_provider_reason(client, make_account, make_customer):
    account, customer = make_account(receipt_delay_seconds=0, failure_rate=1.0), make_customer()
    message = sent(account, customer)
    receipts_post(post=via(client))
    message.refresh_from_db()
    assert (message.status, message.reason) == ("failed", "MK:0001 号码停机")
    assert Event.objects.filter(customer=customer, name="message_failed").exists()
    assert [step.step for step in message.log.all()] == ["queued", "attempt", "receipt"]


def test_a_callback_with_a_wrong_signature_is_refused_and_kept(client, make_account, make_customer):
    account = make_account()
    response = client.post(
        reverse("connector_inbound", args=[account.pk]),
        data=b'[{"biz_id":"1","success":true}]',
        content_type="application/json",
        HTTP_X_SANDBOX_SIGNATURE="0" * 64,
    )
    assert response.status_code == 400
    assert response.content == b"signature does not match"
    assert InboundCallback.objects.get().accepted is False


def test_wechat_template_push_in_safe_mode_reaches_the_message(
    client, make_account, make_customer, settings, redis_url
):
    # Nonces in Redis, as in production: every web process sees the ones the others took.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}
    }
    account = make_account(
        kind="sandbox_wechat_template", name="公众号沙箱", encoding_aes_key=wechat_peer.AES_KEY
    )
    customer = make_customer(openid="o6_bmjrPTlm6_2sgVt7hMZOPfL2M")
    message = sent(
        account, customer, body={"template_id": "TM0001", "fields": {"first": "{{ customer.name }}"}}
    )
    assert message.recipient == "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
    query, body = wechat_peer.push(
        wechat_peer.template_job_finished(
            openid=message.recipient, msg_id=message.provider_message_id, status="failed:user block"
        ),
        appid="wx0000sandbox00000",
        token=CALLBACK_SECRET,
    )
    url = reverse("connector_inbound", args=[account.pk])
    response = client.post(f"{url}?{urlencode(query)}", data=body, content_type="text/xml")
    assert (response.status_code, response.content) == (200, b"success")
    message.refresh_from_db()
    assert (message.status, message.reason) == ("failed", "failed:user block")
    # The same request again (from a log, or the wire): refused, and the message is as it was.
    again = client.post(f"{url}?{urlencode(query)}", data=body, content_type="text/xml")
    assert (again.status_code, again.content) == (400, b"nonce already used: a replayed callback")
    assert redis.Redis.from_url(redis_url).keys("*callback-nonce*")


def test_the_sandbox_posts_wechat_receipts_the_inbound_url_accepts(client, make_account, make_customer):
    """The quickstart's own sender encrypts and signs its pushes as WeChat does."""
    account = make_account(kind="sandbox_wechat_template", name="公众号沙箱", receipt_delay_seconds=0)
    message = sent(account, make_customer(openid="o-follower"), body={"template_id": "TM0001", "fields": {}})
    assert receipts_post(post=via(client)) == 1
    message.refresh_from_db()
    assert message.status == "delivered"
    assert InboundCallback.objects.get().accepted


def sendcloud_event(event: str, email_id: str, **extra) -> bytes:
    timestamp, token = str(int(time.time() * 1000)), secrets.token_hex(25)
    signature = hmac.new(CALLBACK_SECRET.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    fields = {
        "event": event,
        "emailId": email_id,
        "timestamp": timestamp,
        "token": token,
        "signature": signature,
    }
    return urlencode({**fields, **extra}).encode()


def test_email_carries_unsubscribe_and_its_opens_clicks_and_unsubscribes_become_events(
    client, make_account, make_customer
):
    account = make_account(kind="sandbox_email", name="邮件沙箱")
    customer = make_customer(email="fang@example.com")
    message = sent(
        account,
        customer,
        body={"subject": "双十一 {{ customer.name }}", "html": "<p>看看 https://shop.example/sale</p>"},
    )
    assert message.status == "sent"
    unsubscribe = message.content["headers"]["List-Unsubscribe"].strip("<>")
    assert message.content["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/l/" in message.content["html"] and "shop.example" not in message.content["html"]
    url = reverse("connector_inbound", args=[account.pk])
    for event in ("deliver", "open"):
        body = sendcloud_event(event, message.provider_message_id)
        response = client.post(url, data=body, content_type="application/x-www-form-urlencoded")
        assert response.content == b"success"
    message.refresh_from_db()
    assert message.status == "delivered" and message.opened_at is not None
    assert Event.objects.filter(customer=customer, name="message_opened").count() == 1

    link = TrackedLink.objects.get(message=message)
    response = client.get(reverse("connector_link", args=[link.code]))
    assert (response.status_code, response["Location"]) == (302, "https://shop.example/sale")
    clicked = Event.objects.get(customer=customer, name="message_clicked")
    assert clicked.properties["url"] == "https://shop.example/sale"

    path = "/" + unsubscribe.split("://", 1)[1].split("/", 1)[1]
    assert "Stop receiving" in client.get(path, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "不再接收我们的此类消息" in client.get(path, HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert client.post(path).status_code == 200  # RFC 8058 one-click: no CSRF token of ours
    assert Consent.objects.get(customer=customer, channel="email").status == "unsubscribed"
    later = sent(account, customer, key="k2", body={"subject": "又一封", "text": "hi"})
    assert (later.status, later.reason) == ("skipped", "The customer unsubscribed from this channel.")


def test_call_results_carry_duration_and_intent(client, make_account, make_customer):
    account, customer = (
        make_account(kind="sandbox_call", name="外呼沙箱", receipt_delay_seconds=0),
        make_customer(),
    )
    message = sent(
        account, customer, body={"script_id": "winback-1", "params": {"name": "{{ customer.name }}"}}
    )
    receipts_post(post=via(client))
    message.refresh_from_db()
    assert message.status == "delivered"
    event = Event.objects.get(customer=customer, name="message_delivered")
    assert (event.properties["duration"], event.properties["intent"]) == (37, "A")


@pytest.mark.parametrize("kind", ["sandbox_wecom", "sandbox_webhook"])
def test_other_sandboxes_answer_and_report(client, make_account, make_customer, kind):
    from cdp.models import Identity

    account, customer = make_account(kind=kind, name=kind, receipt_delay_seconds=0), make_customer()
    Identity.objects.create(
        customer=customer, type="wecom_external_userid", value="wmABC", first_seen_at=customer.created_at
    )
    body = (
        {"text": "{{ customer.name }}"}
        if kind == "sandbox_wecom"
        else {"payload": '{"name": "{{ customer.name }}"}'}
    )
    message = sent(account, customer, body=body)
    assert message.status == "sent"
    receipts_post(post=via(client))
    message.refresh_from_db()
    assert message.status == "delivered"
    assert Message.objects.count() == 1


def test_a_receipt_resolves_a_message_left_in_doubt(client, make_account, make_customer):
    from connectors.dispatcher import leases_expire

    account = make_account(receipt_delay_seconds=0)
    message = sent(account, make_customer())
    # As if the worker had died after the provider's answer: the answer was never recorded.
    Message.objects.filter(pk=message.pk).update(
        status="sending", provider_message_id="", claim="dead", lease_until="2026-01-01T00:00:00Z"
    )
    leases_expire()
    message.refresh_from_db()
    assert message.status == "unknown"
    receipts_post(post=via(client))
    message.refresh_from_db()
    assert message.status == "delivered"
    assert message.provider_message_id
    assert [step.step for step in message.log.all()] == ["queued", "attempt", "unknown", "receipt"]


def test_sends_wake_the_sandbox_receipts_when_they_are_due_once_per_second(
    make_account, make_customer, redis_url, monkeypatch
):
    """No poll every second: a batch of sends queues one receipts run for the second its receipts
    fall due (an ETA, not a beat tick), and further sends due in that second queue nothing more."""
    import datetime as dt

    import redis
    import time_machine

    from cdp.celery import app as celery_app

    monkeypatch.setitem(celery_app.conf, "broker_url", redis_url)
    broker = redis.Redis.from_url(redis_url)
    account, customer = make_account(receipt_delay_seconds=3), make_customer()
    # 23:59:59.5 in Shanghai; in the past, as the outbox compares due times with the database's clock.
    now = dt.datetime(2026, 8, 31, 15, 59, 59, 500_000, tzinfo=dt.UTC)
    with time_machine.travel(now, tick=False):
        for batch in (("a", "b", "c"), ("d", "e")):
            for key in batch:
                message_enqueue(
                    account=account, customer=customer, idempotency_key=key, body={"text": "您好"}
                )
            dispatch_account_run(account_id=account.pk, budget_seconds=5)

    queued = [json.loads(raw)["headers"] for raw in broker.lrange("sandbox", 0, -1)]
    wakes = [headers for headers in queued if headers["task"] == "connectors.tasks.sandbox_receipts"]
    assert len(wakes) == 1
    # Due 3 s after the sends, rounded up to the second: 00:00:03 on the 1st of September.
    assert dt.datetime.fromisoformat(wakes[0]["eta"]) == dt.datetime(2026, 8, 31, 16, 0, 3, tzinfo=dt.UTC)


def test_a_wechat_sandbox_made_before_encrypted_pushes_gets_a_key_and_its_receipts_arrive(
    client, make_account, make_customer
):
    from importlib import import_module

    from django.apps import apps

    from connectors.accounts import kind_instance
    from connectors.vault import secrets_open, secrets_seal

    account = make_account(kind="sandbox_wechat_template", name="公众号沙箱", receipt_delay_seconds=0)
    before = {k: v for k, v in secrets_open(account.secrets_encrypted).items() if k != "encoding_aes_key"}
    account.secrets_encrypted = secrets_seal(before)
    account.save(update_fields=["secrets_encrypted"])

    import_module("connectors.migrations.0007_wechat_sandbox_encoding_aes_key").encoding_aes_keys_add(
        apps, None
    )
    account.refresh_from_db()
    assert secrets_open(account.secrets_encrypted)["callback_secret"] == CALLBACK_SECRET
    assert (
        kind_instance(account).settings.encoding_aes_key == kind_instance(account).settings.encoding_aes_key
    )
    message = sent(account, make_customer(openid="o-follower"), body={"template_id": "TM0001", "fields": {}})
    assert receipts_post(post=via(client)) == 1
    message.refresh_from_db()
    assert message.status == "delivered"


def test_a_batch_report_leaves_each_message_only_its_own_part(
    client, make_account, make_customer, user_in_role
):
    """Review finding 1: one callback reports on many messages, and the whole body was kept on each,
    so one message's page listed the phones of the other recipients in the batch."""
    account = make_account(receipt_delay_seconds=0)
    wang, li = make_customer(phone="+8613800138000"), make_customer(name="李娜", phone="+8613900001111")
    first, second = sent(account, wang, key="k1"), sent(account, li, key="k2")
    assert receipts_post(post=via(client)) == 2
    assert len(json.loads(InboundCallback.objects.get().body)) == 2  # one callback for both
    for message, own, other in (
        (first, "13800138000", "13900001111"),
        (second, "13900001111", "13800138000"),
    ):
        (receipt,) = message.log.filter(step="receipt")
        assert json.loads(receipt.raw)["biz_id"] == message.provider_message_id
        assert own in receipt.raw and other not in receipt.raw
    client.force_login(user_in_role("Sales"))  # who may see phones sees this message's only
    page = client.get(reverse("message", args=[first.pk])).content.decode()
    assert "13800138000" in page and "13900001111" not in page
