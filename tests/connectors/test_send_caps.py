"""The daily cap of messages to one phone number, across customers and accounts (security review,
finding 2: SMS bombing and pumping through made-up customers). Over the cap a message is skipped with
the reason, as an unsubscribed customer's is."""

import datetime as dt
import zoneinfo

import pytest
import time_machine

from cdp.models import Event, Identity
from connectors.dispatcher import dispatch_account_run
from connectors.models import Message, SandboxDelivery
from connectors.sendcaps import REASON_OVER_CAP
from connectors.services import message_enqueue

pytestmark = pytest.mark.django_db(transaction=True)

SMS = {"template_code": "SMS_1", "params": {}, "text": "您好"}
# A morning in the past: the messages are due by the database's clock too.
MONDAY = dt.datetime(2026, 11, 2, 9, 0, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai"))


def enqueue(account, customer, keys):
    for key in keys:
        message_enqueue(account=account, customer=customer, idempotency_key=key, body=SMS)


def statuses(keys) -> list[str]:
    found = dict(Message.objects.filter(idempotency_key__in=keys).values_list("idempotency_key", "status"))
    return [found[key] for key in keys]


def test_one_number_gets_at_most_the_daily_cap_whoever_holds_it_and_whichever_account_sends(
    make_account, make_customer, settings
):
    settings.PHONE_DAILY_SEND_CAP = 10
    first_account, second_account = make_account(), make_account(name="另一家短信")
    with time_machine.travel(MONDAY, tick=False) as clock:
        first = make_customer()
        enqueue(first_account, first, [f"a{n}" for n in range(6)])
        # The number moves to another profile (a sign-up made up around it): it is still one number.
        Identity.objects.filter(customer=first, type="phone").delete()
        second = make_customer(name="冒名")
        enqueue(second_account, second, [f"b{n}" for n in range(6)])
        for account in (first_account, second_account):
            dispatch_account_run(account_id=account.pk, budget_seconds=5)

        keys = [f"a{n}" for n in range(6)] + [f"b{n}" for n in range(6)]
        assert statuses(keys).count("sent") == 10
        assert SandboxDelivery.objects.count() == 10
        skipped = Message.objects.filter(status="skipped")
        assert skipped.count() == 2
        assert {message.reason for message in skipped} == {REASON_OVER_CAP}
        assert Event.objects.filter(name="message_skipped").count() == 2

        # The next day the number may be reached again.
        clock.move_to(MONDAY + dt.timedelta(days=1))
        enqueue(first_account, second, ["c0"])
        dispatch_account_run(account_id=first_account.pk, budget_seconds=5)
        assert statuses(["c0"]) == ["sent"]


def test_other_numbers_and_other_channels_are_not_held_up(make_account, make_customer, settings):
    settings.PHONE_DAILY_SEND_CAP = 1
    sms = make_account()
    email = make_account(kind="sandbox_email", name="邮件沙箱")
    with time_machine.travel(MONDAY, tick=False):
        fang = make_customer(email="fang@example.com")
        lei = make_customer(name="李雷", phone="+8613900139000")
        enqueue(sms, fang, ["f1", "f2"])
        enqueue(sms, lei, ["l1"])
        for key in ("e1", "e2"):
            message_enqueue(
                account=email, customer=fang, idempotency_key=key, body={"subject": "hi", "text": "hi"}
            )
        for account in (sms, email):
            dispatch_account_run(account_id=account.pk, budget_seconds=5)
    assert statuses(["f1", "f2", "l1", "e1", "e2"]) == ["sent", "skipped", "sent", "sent", "sent"]


def test_no_cap_when_set_to_zero(make_account, make_customer, settings):
    settings.PHONE_DAILY_SEND_CAP = 0
    account = make_account()
    with time_machine.travel(MONDAY, tick=False):
        enqueue(account, make_customer(), [f"k{n}" for n in range(12)])
        dispatch_account_run(account_id=account.pk, budget_seconds=5)
    assert Message.objects.filter(status="sent").count() == 12
