"""The contact policy: caps per customer and channel, quiet hours in the customer's time zone (held
until they end, or skipped), consent, journey priority; every hold and skip on the timeline with its
reason; the settings page and the API."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
import time_machine
from django.utils import timezone

from cdp.models import Consent, Event
from connectors.models import Message
from journeys.engine import tick
from journeys.matching import events_match
from journeys.models import ChannelPolicy, Enrollment
from journeys.policy import channel_policy_save
from tests.journeys.conftest import edge, node, published, track

pytestmark = pytest.mark.django_db(transaction=True)
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def send_graph(account, template="cart-sms", event="signed_up") -> dict:
    """Trigger → send → (failed) exit: a skipped send leaves by "failed"."""
    return {
        "nodes": [
            node("t1", "event_trigger", event=event),
            node("s1", "send", account=account.pk, template=template, ends=["delivered", "no_response"]),
            node("x1", "exit"),
        ],
        "edges": [edge("t1", "s1"), edge("s1", "x1", "failed")],
    }


def policy_events(customer, name: str) -> list[dict]:
    return list(
        Event.objects.filter(customer=customer, name=name).order_by("id").values_list("properties", flat=True)
    )


def test_a_daily_cap_lets_the_higher_priority_journey_send_and_skips_the_other(
    make_account, sms_template, make_customer, client, user_in_role
):
    sms = make_account()
    channel_policy_save(channel="sms", per_day=1, per_week=5, actor=None)
    low = published(send_graph(sms), name="低优先级", priority=1)
    high = published(send_graph(sms), name="高优先级", priority=9)
    customer = make_customer()
    track(customer, "signed_up")
    events_match(customer_ids=[customer.pk])

    message = Message.objects.get()
    assert message.journey_id == high.pk
    skipped = Enrollment.objects.get(journey=low)
    assert skipped.status == "completed"
    assert list(skipped.steps.order_by("id").values_list("node_id", "outcome", "reason")) == [
        ("t1", "default", ""),
        ("s1", "failed", "contact policy: Reached the cap of 1 messages a day on this channel."),
        ("x1", "end", "exit"),
    ]
    (logged,) = policy_events(customer, "contact_policy_skipped")
    assert logged["reason"] == "Reached the cap of %(count)s messages a day on this channel."
    assert logged["reason_params"] == {"count": 1}
    assert (logged["channel"], logged["journey"], logged["node"]) == ("sms", low.pk, "s1")
    # Sales staff read the reason on the timeline in their own language.
    client.force_login(user_in_role("Sales"))
    assert "已达到此渠道每天 1 条的上限。" in client.get(f"/customers/{customer.pk}/").content.decode()

    # A day later the cap has room again; the week's cap counts on.
    with time_machine.travel(timezone.now() + dt.timedelta(days=1, minutes=1), tick=False):
        track(customer, "order_completed")
        again = published(send_graph(sms, event="order_completed"), name="第二天")
        track(customer, "order_completed")
        events_match(customer_ids=[customer.pk])
    assert Message.objects.filter(journey_id=again.pk).count() == 1


def test_a_cap_counts_two_entries_of_one_customer_in_the_same_batch(
    make_account, sms_template, make_customer
):
    sms = make_account()
    channel_policy_save(channel="sms", per_day=1, actor=None)
    published(
        send_graph(sms, event="cart_abandoned"), entry_policy="once_per_key", entry_key_property="cart_id"
    )
    customer = make_customer()
    track(customer, "cart_abandoned", {"cart_id": "a"})
    track(customer, "cart_abandoned", {"cart_id": "b"})
    events_match(customer_ids=[customer.pk])
    assert Enrollment.objects.count() == 2
    assert Message.objects.count() == 1
    assert len(policy_events(customer, "contact_policy_skipped")) == 1


def test_quiet_hours_hold_the_send_until_they_end_in_the_customers_time_zone(
    make_account, sms_template, make_customer
):
    sms = make_account()
    channel_policy_save(
        channel="sms", quiet_start="21:00", quiet_end="08:00", quiet_action="hold", actor=None
    )
    customer = make_customer(traits={"timezone": "Asia/Shanghai"})
    late_evening = dt.datetime(2026, 11, 24, 22, 30, tzinfo=SHANGHAI)
    with time_machine.travel(late_evening, tick=False) as clock:
        published(send_graph(sms))
        track(customer, "signed_up")
        events_match(customer_ids=[customer.pk])
        assert not Message.objects.exists()
        enrollment = Enrollment.objects.get()
        morning = dt.datetime(2026, 11, 25, 8, 0, tzinfo=SHANGHAI)
        assert (enrollment.node_id, enrollment.phase, enrollment.wake_at) == ("s1", "resume", morning)
        (held,) = policy_events(customer, "contact_policy_held")
        assert held["reason"] == "Quiet hours: held until they end."
        assert dt.datetime.fromisoformat(held["until"]) == morning

        clock.move_to(dt.datetime(2026, 11, 25, 7, 59, tzinfo=SHANGHAI))
        tick()
        assert not Message.objects.exists()
        clock.move_to(dt.datetime(2026, 11, 25, 8, 0, 1, tzinfo=SHANGHAI))
        tick()
    message = Message.objects.get()
    assert (message.status, message.idempotency_key) == ("queued", f"journey:{enrollment.pk}:s1:1")
    enrollment.refresh_from_db()
    assert (enrollment.node_id, enrollment.waiting_events) == (
        "s1",
        ["message_delivered", "message_failed", "message_skipped"],
    )
    # A customer elsewhere is not in quiet hours at that moment (14:30 in Shanghai is 07:30 in Paris).
    assert len(policy_events(customer, "contact_policy_held")) == 1


def test_quiet_hours_can_skip_instead_and_a_customers_own_zone_decides(
    make_account, sms_template, make_customer
):
    sms = make_account()
    channel_policy_save(
        channel="sms", quiet_start="21:00", quiet_end="08:00", quiet_action="skip", actor=None
    )
    in_shanghai = make_customer(traits={"timezone": "Asia/Shanghai"})
    in_paris = make_customer(name="Marie", phone="+33612345678", traits={"timezone": "Europe/Paris"})
    with time_machine.travel(dt.datetime(2026, 11, 24, 22, 30, tzinfo=SHANGHAI), tick=False):
        published(send_graph(sms))
        for customer in (in_shanghai, in_paris):
            track(customer, "signed_up")
        events_match(customer_ids=[in_shanghai.pk, in_paris.pk])
    assert list(Message.objects.values_list("customer_id", flat=True)) == [in_paris.pk]
    assert Enrollment.objects.get(customer=in_shanghai).status == "completed"
    (skipped,) = policy_events(in_shanghai, "contact_policy_skipped")
    assert skipped["reason"] == "Quiet hours: skipped."
    assert policy_events(in_paris, "contact_policy_skipped") == []


def test_consent_is_always_checked_and_a_refused_channel_falls_back(
    make_account, sms_template, wechat_template, make_customer
):
    wechat = make_account(kind="sandbox_wechat_template", name="公众号沙箱", appid="wx0000sandbox00000")
    sms = make_account()
    customer = make_customer(openid="o-unsubscribed")
    Consent.objects.create(
        customer=customer, channel="wechat", status="unsubscribed", changed_at=timezone.now()
    )
    published(
        {
            "nodes": [
                node("t1", "event_trigger", event="signed_up"),
                node(
                    "s1", "send", account=wechat.pk, template="cart-wechat", ends=["delivered", "no_response"]
                ),
                node(
                    "s2",
                    "send",
                    account=sms.pk,
                    template="cart-sms",
                    ends=["delivered", "failed", "no_response"],
                ),
            ],
            "edges": [edge("t1", "s1"), edge("s1", "s2", "failed")],
        }
    )
    track(customer, "signed_up")
    events_match(customer_ids=[customer.pk])
    assert list(Message.objects.values_list("channel", flat=True)) == ["sms"]
    (skipped,) = policy_events(customer, "contact_policy_skipped")
    assert (skipped["channel"], skipped["reason"]) == (
        "wechat_template",
        "The customer unsubscribed from this channel.",
    )


@pytest.fixture
def admin(client, user_in_role):
    client.force_login(user_in_role("Admin"))
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def test_the_settings_page_saves_caps_quiet_hours_and_priorities(admin):
    journey = published(
        {
            "nodes": [node("t1", "event_trigger", event="signed_up"), node("x1", "exit")],
            "edges": [edge("t1", "x1")],
        }
    )
    page = admin.get("/settings/contact-policy/")
    assert page.status_code == 200
    assert "Quiet hours from" in page.content.decode()
    form = {
        "sms.per_day": "2",
        "sms.per_week": "5",
        "sms.quiet_start": "21:00",
        "sms.quiet_end": "08:00",
        "sms.quiet_action": "skip",
        f"priority.{journey.pk}": "7",
    }
    saved = admin.post("/settings/contact-policy/", form)
    assert saved.status_code == 302, saved.content.decode().split("flash--error")[-1][:600]
    policy = ChannelPolicy.objects.get(channel="sms")
    assert (policy.per_day, policy.per_week, policy.quiet_action) == (2, 5, "skip")
    assert (policy.quiet_start, policy.quiet_end) == (dt.time(21), dt.time(8))
    journey.refresh_from_db()
    assert journey.priority == 7

    refused = admin.post("/settings/contact-policy/", {**form, "sms.per_week": "1", "sms.quiet_end": ""})
    assert refused.status_code == 200
    text = refused.content.decode()
    assert "A week&#x27;s cap cannot be lower than a day&#x27;s." in text
    assert "Give both ends of the quiet hours, at different times, or neither." in text
    assert ChannelPolicy.objects.get(channel="sms").per_week == 5  # nothing saved


def test_the_api_reads_and_sets_a_channels_policy(admin, client, user_in_role):
    listed = admin.get("/api/journeys/contact-policy/").json()
    assert {row["channel"] for row in listed} >= {"sms", "email", "wechat_template"}
    response = admin.put(
        "/api/journeys/contact-policy/email/",
        {"per_day": 1, "quiet_start": "22:00", "quiet_end": "07:30", "quiet_action": "hold"},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["quiet_end"] == "07:30"
    problem = admin.put(
        "/api/journeys/contact-policy/email/", {"per_day": 0}, content_type="application/json"
    ).json()
    assert problem == {"per_day": ["Give a whole number from 1 to 1000, or leave it empty for no cap."]}
    schema = admin.get("/api/schema/").content.decode()
    assert "/api/journeys/contact-policy/{channel}/" in schema
    client.force_login(user_in_role("Analyst"))
    assert (
        client.put("/api/journeys/contact-policy/email/", {}, content_type="application/json").status_code
        == 403
    )
