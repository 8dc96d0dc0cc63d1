"""The outbox and the dispatcher, against the sandbox provider and PostgreSQL (in-process dispatch;
tests with real worker processes are in test_workers.py)."""

import json

import pytest
from django.core.exceptions import ValidationError

from cdp.models import Consent, Event
from cdp.services import consent_set
from connectors.dispatcher import dispatch_account_run, leases_expire
from connectors.models import ChannelAccount, SandboxDelivery
from connectors.services import message_enqueue

pytestmark = pytest.mark.django_db(transaction=True)

SMS = {"template_code": "SMS_1", "params": {"name": "{{ customer.name }}"}, "text": "{{ customer.name }}您好"}


def send(account, customer, key="k1", body=SMS):
    message, _created = message_enqueue(account=account, customer=customer, idempotency_key=key, body=body)
    dispatch_account_run(account_id=account.pk, budget_seconds=5)
    message.refresh_from_db()
    return message


def test_a_message_goes_out_once_and_lands_on_the_timeline(make_account, make_customer):
    account, customer = make_account(), make_customer()
    message = send(account, customer)
    assert message.status == "sent"
    assert message.recipient == "+8613800138000"
    assert message.content["text"] == "王芳您好"
    delivery = SandboxDelivery.objects.get(account=account)
    assert (delivery.idempotency_key, delivery.requests) == ("k1", 1)
    assert message.provider_message_id == delivery.provider_message_id
    assert json.loads(message.provider_answer)["Code"] == "OK"
    sent = Event.objects.get(customer=customer, name="message_sent")
    assert sent.properties == {
        "channel": "sms",
        "account": account.pk,
        "template": None,
        "message": message.pk,
    }
    assert [step.step for step in message.log.all()] == ["queued", "attempt"]

    again, created = message_enqueue(account=account, customer=customer, idempotency_key="k1", body=SMS)
    assert (again.pk, created) == (message.pk, False)


def test_an_unsubscribed_customer_is_skipped_with_the_reason(make_account, make_customer):
    account, customer = make_account(), make_customer()
    consent_set(customer=customer, channel="sms", subscribed=False, origin="test")
    message = send(account, customer)
    assert message.status == "skipped"
    assert "unsubscribed" in message.reason
    assert not SandboxDelivery.objects.exists()
    assert Event.objects.filter(customer=customer, name="message_skipped").exists()


def test_a_customer_without_a_phone_is_skipped(make_account, make_customer):
    message = send(make_account(), make_customer(phone=""))
    assert (message.status, message.reason) == ("skipped", "The customer has no phone number.")


def test_a_garbage_answer_fails_the_message_with_the_answer_kept_and_the_next_goes_out(
    make_account, make_customer
):
    account = make_account(garbage_rate=1.0)
    first = send(account, make_customer(), key="bad")
    assert first.status == "failed"
    assert first.reason == "unreadable answer from the provider"
    assert "upstream said" in first.provider_answer
    ChannelAccount.objects.filter(pk=account.pk).update(settings={**account.settings, "garbage_rate": 0.0})
    assert send(account, make_customer(phone="+8613900139000"), key="good").status == "sent"


def test_throttling_is_retried_later_with_backoff(make_account, make_customer):
    account = make_account(error_rate=1.0, error_code="Throttling.User")
    message = send(account, make_customer())
    assert message.status == "queued"
    assert message.reason.startswith("retry: Throttling.User")
    assert message.due_at > message.created_at
    assert message.attempts == 1


def test_a_spent_daily_quota_defers_to_midnight(make_account, make_customer):
    message = send(make_account(error_rate=1.0, error_code="isv.DAY_LIMIT_CONTROL"), make_customer())
    assert message.status == "queued"
    assert message.reason.startswith("deferred:")
    assert message.due_at.hour == 16 or message.due_at.astimezone().hour == 0  # midnight in Asia/Shanghai


def test_bad_credentials_pause_the_account_and_hold_the_message(make_account, make_customer):
    account = make_account(error_rate=1.0, error_code="InvalidAccessKeyId.NotFound")
    message = send(account, make_customer())
    account.refresh_from_db()
    assert account.status == "paused"
    assert "InvalidAccessKeyId" in account.paused_reason
    assert message.status == "held"
    second, _ = message_enqueue(
        account=account, customer=make_customer(phone="+8613700137000"), idempotency_key="k2", body=SMS
    )
    dispatch_account_run(account_id=account.pk, budget_seconds=1)
    second.refresh_from_db()
    assert second.status == "queued"  # a paused account sends nothing


def test_a_claim_whose_worker_died_becomes_unknown_and_is_not_resent(make_account, make_customer, settings):
    from django.db import connection

    account, customer = make_account(), make_customer()
    message, _ = message_enqueue(account=account, customer=customer, idempotency_key="k1", body=SMS)
    with connection.cursor() as cursor:  # what a claim left behind by a killed worker looks like
        cursor.execute(
            "UPDATE connectors_message SET status='sending', claim='dead', attempts=1,"
            " lease_until = now() - interval '1 second' WHERE id = %s",
            [message.pk],
        )
    assert leases_expire() == 1
    dispatch_account_run(account_id=account.pk, budget_seconds=1)
    message.refresh_from_db()
    assert message.status == "unknown"
    assert "check with the provider" in message.reason
    assert not SandboxDelivery.objects.exists()


def test_an_invalid_template_fails_the_message_with_the_field(make_account, make_customer):
    message, _ = message_enqueue(
        account=make_account(),
        customer=make_customer(),
        idempotency_key="k1",
        body={"template_code": "SMS_1", "text": "{{ customer.__class__.__mro__ }}"},
    )
    assert message.status == "failed"
    assert message.reason.startswith("text:")


def test_a_paused_account_resumes_and_sends_what_it_held(make_account, make_customer):
    from connectors.accounts import account_resume

    account = make_account(error_rate=1.0, error_code="isv.AMOUNT_NOT_ENOUGH")
    message = send(account, make_customer())
    assert message.status == "held"
    ChannelAccount.objects.filter(pk=account.pk).update(settings={**account.settings, "error_rate": 0.0})
    account.refresh_from_db()
    assert account_resume(account=account) == 1
    dispatch_account_run(account_id=account.pk, budget_seconds=2)
    message.refresh_from_db()
    assert message.status == "sent"


def test_invalid_account_settings_are_refused_with_the_field(db):
    from connectors.accounts import account_create

    with pytest.raises(ValidationError) as refused:
        account_create(kind="sandbox_sms", name="x", values={"failure_rate": 3, "callback_secret": "k"})
    assert set(refused.value.message_dict) == {"failure_rate", "callback_secret"}
    assert not Consent.objects.exists()


def test_an_account_whose_secrets_cannot_be_read_pauses_and_sends_nothing(
    make_account, make_customer, settings
):
    from cryptography.fernet import Fernet

    from connectors.vault import secrets_seal

    account = make_account()
    listed = settings.CHANNEL_SECRETS_KEY
    settings.CHANNEL_SECRETS_KEY = [Fernet.generate_key().decode()]  # a key no longer listed
    ChannelAccount.objects.filter(pk=account.pk).update(
        secrets_encrypted=secrets_seal({"callback_secret": "k" * 9})
    )
    settings.CHANNEL_SECRETS_KEY = listed
    message = send(account, make_customer())
    account.refresh_from_db()
    assert message.status == "queued"  # never claimed, so never in doubt
    assert account.status == "paused"
    assert "cannot be used" in account.paused_reason


def test_settings_that_no_longer_validate_pause_the_account_naming_the_field_not_the_secret(
    make_account, make_customer, caplog
):
    """Review finding 15: the pause reason (shown to admins, kept in the audit log) and the logs name
    the field and the problem, never the decrypted value."""
    from connectors.vault import secrets_seal

    account = make_account()
    ChannelAccount.objects.filter(pk=account.pk).update(
        secrets_encrypted=secrets_seal({"callback_secret": "s3cr"})
    )
    message = send(account, make_customer())
    account.refresh_from_db()
    assert message.status == "queued"
    assert account.status == "paused"
    assert "callback_secret: String should have at least 8 characters" in account.paused_reason
    assert "s3cr" not in account.paused_reason
    assert "s3cr" not in caplog.text
