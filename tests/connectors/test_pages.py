"""Channel and message pages: who may open them, an account added from its schema's form, secrets
never shown again, test sends, pause and resume, message search and a message's life."""

import pytest
from django.urls import reverse

from connectors.dispatcher import dispatch_account_run
from connectors.models import ChannelAccount, Message
from connectors.services import message_enqueue

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "very-secret-callback-key-42"
SANDBOX_FORM = {"receipt_delay_seconds": 1, "failure_rate": 0, "error_rate": 0, "garbage_rate": 0}


@pytest.fixture
def admin_client(client, user_in_role):
    client.force_login(user_in_role("Admin"))
    return client


def test_only_admins_manage_channels_and_analysts_read_messages(client, user_in_role):
    client.force_login(user_in_role("Marketer"))
    assert client.get(reverse("channels")).status_code == 403
    assert client.get(reverse("channel_new", args=["sandbox_sms"])).status_code == 403
    client.force_login(user_in_role("Analyst"))
    assert client.get(reverse("messages")).status_code == 200
    assert client.get(reverse("channel_sandbox")).status_code == 403


def test_an_admin_adds_an_account_from_its_schema_and_its_secret_is_never_shown(admin_client):
    url = reverse("channel_new", args=["sandbox_sms"])
    form = admin_client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'name="latency_ms"' in form and 'type="password"' in form

    refused = admin_client.post(
        url,
        {
            "name": "短信",
            "rate_per_second": 50,
            "latency_ms": 10,
            "failure_rate": 1.5,
            "callback_secret": "x",
        },
        HTTP_ACCEPT_LANGUAGE="en",
    )
    page = refused.content.decode()
    assert "less than or equal to 1" in page and "at least 8 characters" in page
    assert not ChannelAccount.objects.exists()

    added = admin_client.post(
        url,
        {**SANDBOX_FORM, "name": "短信", "rate_per_second": 50, "latency_ms": 10, "callback_secret": SECRET},
    )
    account = ChannelAccount.objects.get()
    assert added.status_code == 302
    assert SECRET not in account.secrets_encrypted and "callback_secret" not in account.settings
    assert (account.rate_per_second, account.settings["latency_ms"]) == (50, 10)
    detail = admin_client.get(reverse("channel", args=[account.pk])).content.decode()
    assert SECRET not in detail
    assert f"/hooks/{account.pk}/" in detail

    # Saving without retyping the secret keeps it.
    admin_client.post(
        reverse("channel", args=[account.pk]),
        {**SANDBOX_FORM, "name": "短信二", "rate_per_second": 80, "latency_ms": 0, "callback_secret": ""},
    )
    account.refresh_from_db()
    from connectors.vault import secrets_open

    assert (account.name, secrets_open(account.secrets_encrypted)) == ("短信二", {"callback_secret": SECRET})


def test_test_send_pause_and_resume(admin_client, make_account, make_customer):
    account, customer = make_account(), make_customer()
    response = admin_client.post(
        reverse("channel_test", args=[account.pk]),
        {"customer": "+8613800138000", "text": "测试 {{ customer.name }}"},
    )
    message = Message.objects.get()
    assert response["Location"] == reverse("message", args=[message.pk])
    assert (message.customer_id, message.origin, message.content["text"]) == (
        customer.pk,
        "test",
        "测试 王芳",
    )

    admin_client.post(reverse("channel_pause", args=[account.pk]))
    account.refresh_from_db()
    assert account.status == "paused"
    dispatch_account_run(account_id=account.pk, budget_seconds=1)
    message.refresh_from_db()
    assert message.status == "queued"
    admin_client.post(reverse("channel_pause", args=[account.pk]), {"resume": "1"})
    dispatch_account_run(account_id=account.pk, budget_seconds=2)
    message.refresh_from_db()
    assert message.status == "sent"


def test_messages_are_found_by_status_and_customer_and_show_their_life(
    admin_client, make_account, make_customer
):
    account = make_account()
    first, second = make_customer(), make_customer(name="赵六", phone="+8613600136000")
    for key, customer in (("a", first), ("b", second)):
        message_enqueue(
            account=account, customer=customer, idempotency_key=key, body={"template_code": "S", "text": "hi"}
        )
    dispatch_account_run(account_id=account.pk, budget_seconds=2)
    Message.objects.filter(idempotency_key="b").update(status="unknown", reason="lease expired")

    listing = admin_client.get(reverse("messages"), {"status": "unknown"}).content.decode()
    unknown = Message.objects.get(idempotency_key="b")
    assert f'data-message="{unknown.pk}"' in listing
    assert f'data-message="{Message.objects.get(idempotency_key="a").pk}"' not in listing
    by_phone = admin_client.get(reverse("messages"), {"customer": "+8613800138000"}).content.decode()
    assert 'data-message="' in by_phone, by_phone[by_phone.find("<tbody") :][:600]
    assert f'data-message="{unknown.pk}"' not in by_phone

    detail = admin_client.get(
        reverse("message", args=[unknown.pk]), HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()
    assert 'data-step="queued"' in detail and 'data-step="attempt"' in detail
    assert "Send it again" in detail
    admin_client.post(reverse("message_resolve", args=[unknown.pk]), {"decision": "sent"})
    unknown.refresh_from_db()
    assert unknown.status == "sent"


def test_the_sandbox_outbox_shows_what_would_have_been_sent(admin_client, make_account, make_customer):
    account = make_account()
    message_enqueue(
        account=account,
        customer=make_customer(),
        idempotency_key="a",
        body={"template_code": "S", "text": "双十一快乐"},
    )
    dispatch_account_run(account_id=account.pk, budget_seconds=2)
    page = admin_client.get(reverse("channel_sandbox")).content.decode()
    assert "双十一快乐" in page and "+8613800138000" in page


def test_the_channels_page_lists_every_kind_to_add_and_the_accounts(admin_client, make_account):
    page = admin_client.get(reverse("channels"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert reverse("channel_new", args=["sandbox_wechat_template"]) in page
    assert reverse("channel_new", args=["webhook"]) in page
    account = make_account(name="阿里云短信")
    page = admin_client.get(reverse("channels")).content.decode()
    assert f'data-account="{account.pk}"' in page and "阿里云短信" in page
