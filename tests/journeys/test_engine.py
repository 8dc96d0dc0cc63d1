"""The engine in one process: a journey runs across ticks on a moved clock, falls back to another
channel, never repeats a step when a tick is replayed or two ticks run at once, and fails only the
enrollment whose node cannot run. Real worker and beat processes are in test_processes.py."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import time_machine
from django.db import connection, connections
from django.utils import timezone

from cdp.models import Event
from connectors.dispatcher import dispatch_account_run
from connectors.models import Message, SandboxDelivery
from connectors.protocol import Receipt
from connectors.services import receipts_apply
from journeys import engine
from journeys.engine import tick
from journeys.matching import events_match
from journeys.models import Enrollment, JourneyVersion, Step
from journeys.selectors import node_counts
from journeys.services import journey_publish, journey_save, journey_set_status
from segments.models import CustomerTag
from tests.journeys.conftest import edge, node, published, track

pytestmark = pytest.mark.django_db(transaction=True)
OPENID = "o-sandbox-openid-1"


def cart_graph(wechat, sms) -> dict:
    """Cart abandoned → 1 hour → VIP? → WeChat template (fallback: SMS) → order for the same cart
    within a day? → tag."""
    return {
        "nodes": [
            node("t1", "event_trigger", event="cart_abandoned"),
            node("d1", "delay", seconds=3600),
            node(
                "c1",
                "condition",
                branches=[{"id": "vip", "rule": {"trait": "level", "op": "eq", "value": "vip"}}],
            ),
            node("x1", "exit"),
            node("s1", "send", account=wechat.pk, template="cart-wechat", no_response_seconds=7200),
            node("s2", "send", account=sms.pk, template="cart-sms", ends=["failed", "no_response"]),
            node(
                "w1",
                "wait_for_event",
                event="order_completed",
                timeout_seconds=86400,
                match_property="cart_id",
            ),
            node("g1", "add_tag", tag="bought", ends=["default"]),
            node("g2", "add_tag", tag="lost", ends=["default"]),
        ],
        "edges": [
            edge("t1", "d1"),
            edge("d1", "c1"),
            edge("c1", "s1", "vip"),
            edge("c1", "x1", "else"),
            edge("s1", "w1", "delivered"),
            edge("s1", "s2", "failed"),
            edge("s1", "x1", "no_response"),
            edge("s2", "w1", "delivered"),
            edge("w1", "g1", "happened"),
            edge("w1", "g2", "timed_out"),
        ],
    }


@pytest.fixture
def accounts(make_account, sms_template, wechat_template, tags):
    wechat = make_account(kind="sandbox_wechat_template", name="公众号沙箱", appid="wx0000sandbox00000")
    return wechat, make_account()


def steps_of(enrollment) -> list[tuple[str, str]]:
    return list(enrollment.steps.order_by("id").values_list("node_id", "outcome"))


def deliver(account, message) -> None:
    """The provider's delivery report, applied as the inbound path applies it."""
    receipts_apply(
        account=account,
        receipts=[Receipt(provider_message_id=message.provider_message_id, status="delivered")],
    )


def an_hour_ago():
    """Journeys start in the past and their delays end now: the dispatcher compares due times with
    the database's clock, which a travelling test clock does not move."""
    return time_machine.travel(timezone.now() - dt.timedelta(hours=1, seconds=2), tick=False)


def test_a_cart_journey_runs_across_ticks_to_the_tag(accounts, make_customer):
    wechat, sms = accounts
    customer = make_customer(openid=OPENID, traits={"level": "vip"})
    with an_hour_ago() as clock:
        published(cart_graph(wechat, sms))
        track(customer, "cart_abandoned", {"cart_id": "c-1"})
        assert events_match(customer_ids=[customer.pk]) == (1, 0)
        enrollment = Enrollment.objects.get()
        assert (enrollment.node_id, enrollment.phase) == ("d1", "resume")
        assert enrollment.wake_at == timezone.now() + dt.timedelta(hours=1)
        clock.shift(dt.timedelta(minutes=59))
        assert tick() == 0  # the delay is not over

    tick()
    enrollment.refresh_from_db()
    assert enrollment.node_id == "s1"
    assert enrollment.waiting_events == ["message_delivered", "message_failed", "message_skipped"]
    message = Message.objects.get()
    assert (message.channel, message.recipient, message.idempotency_key) == (
        "wechat_template",
        OPENID,
        f"journey:{enrollment.pk}:s1:1",
    )
    dispatch_account_run(account_id=wechat.pk, budget_seconds=5)
    message.refresh_from_db()
    deliver(wechat, message)
    assert events_match(customer_ids=[customer.pk]) == (0, 1)
    enrollment.refresh_from_db()
    assert (enrollment.node_id, enrollment.waiting_match["value"]) == ("w1", "c-1")

    track(customer, "order_completed", {"cart_id": "c-2"})  # another cart's order
    assert events_match(customer_ids=[customer.pk]) == (0, 0)
    track(customer, "order_completed", {"cart_id": "c-1"})
    assert events_match(customer_ids=[customer.pk]) == (0, 1)

    enrollment.refresh_from_db()
    assert enrollment.status == "completed"
    assert steps_of(enrollment) == [
        ("t1", "default"),
        ("d1", "default"),
        ("c1", "vip"),
        ("s1", "delivered"),
        ("w1", "happened"),
        ("g1", "default"),
    ]
    assert CustomerTag.objects.filter(customer=customer, tag__key="bought", origin="journey").exists()
    assert SandboxDelivery.objects.count() == 1
    counts = node_counts(journey=enrollment.journey)
    assert counts["s1"] == {"entered": 1, "waiting": 0, "left": {"delivered": 1}}


def test_the_wait_times_out_and_a_customer_who_is_not_vip_leaves_by_else(accounts, make_customer):
    wechat, sms = accounts
    vip = make_customer(openid=OPENID, traits={"level": "vip"})
    other = make_customer(name="李雷", phone="+8613900139000", traits={"level": "normal"})
    with an_hour_ago():
        journey = published(cart_graph(wechat, sms))
        for customer in (vip, other):
            track(customer, "cart_abandoned", {"cart_id": f"c-{customer.pk}"})
        events_match(customer_ids=[vip.pk, other.pk])
    tick()
    dispatch_account_run(account_id=wechat.pk, budget_seconds=5)
    deliver(wechat, Message.objects.get())
    events_match(customer_ids=[vip.pk])
    with time_machine.travel(timezone.now() + dt.timedelta(days=1, minutes=1), tick=False):
        tick()
    mine = Enrollment.objects.get(customer=vip)
    assert steps_of(mine)[-2:] == [("w1", "timed_out"), ("g2", "default")]
    assert steps_of(Enrollment.objects.get(customer=other))[-2:] == [("c1", "else"), ("x1", "end")]
    assert node_counts(journey=journey)["c1"]["left"] == {"vip": 1, "else": 1}


def test_a_failed_send_falls_back_to_sms(make_account, sms_template, wechat_template, tags, make_customer):
    # The WeChat provider refuses every send (43004: the customer does not follow the account).
    wechat = make_account(
        kind="sandbox_wechat_template",
        name="公众号沙箱",
        appid="wx0000sandbox00000",
        error_rate=1.0,
        error_code="43004",
    )
    sms = make_account()
    customer = make_customer(openid=OPENID, traits={"level": "vip"})
    with an_hour_ago():
        published(cart_graph(wechat, sms))
        track(customer, "cart_abandoned", {"cart_id": "c-9"})
        events_match(customer_ids=[customer.pk])
    tick()
    dispatch_account_run(account_id=wechat.pk, budget_seconds=5)
    assert Message.objects.get(channel="wechat_template").status == "failed"
    assert events_match(customer_ids=[customer.pk]) == (0, 1)  # message_failed woke it
    enrollment = Enrollment.objects.get()
    assert enrollment.node_id == "s2"
    assert steps_of(enrollment)[3] == ("s1", "failed")
    sms_message = Message.objects.get(channel="sms")
    assert (sms_message.recipient, sms_message.idempotency_key) == (
        "+8613800138000",
        f"journey:{enrollment.pk}:s2:1",
    )


def test_a_customer_with_no_wechat_falls_back_at_once(accounts, make_customer):
    wechat, sms = accounts
    customer = make_customer(traits={"level": "vip"})  # a phone, no openid
    with an_hour_ago():
        published(cart_graph(wechat, sms))
        track(customer, "cart_abandoned", {"cart_id": "c-3"})
        events_match(customer_ids=[customer.pk])
    tick()
    enrollment = Enrollment.objects.get()
    assert steps_of(enrollment)[3] == ("s1", "failed")
    assert Message.objects.get(channel="wechat_template").status == "skipped"
    assert Message.objects.filter(channel="sms").count() == 1


def test_a_replayed_tick_repeats_no_step(accounts, make_customer):
    wechat, sms = accounts
    customer = make_customer(openid=OPENID, traits={"level": "vip"})
    with an_hour_ago():
        published(cart_graph(wechat, sms))
        track(customer, "cart_abandoned", {"cart_id": "c-4"})
        events_match(customer_ids=[customer.pk])
    enrollment = Enrollment.objects.get()
    fields = ["node_id", "visit", "visits", "phase", "status", "wake_at", "waiting_events", "waiting_match"]
    as_it_was = Enrollment.objects.filter(pk=enrollment.pk).values(*fields).get()
    tick()
    before = steps_of(enrollment)
    events_before = Event.objects.count()
    # The same tick once more, on the enrollment as it was before (a replay): the delay's end.
    Enrollment.objects.filter(pk=enrollment.pk).update(**as_it_was)
    tick()
    enrollment.refresh_from_db()
    assert steps_of(enrollment) == before
    assert Step.objects.count() == 4
    assert Message.objects.count() == 1
    assert Event.objects.count() == events_before
    assert (enrollment.node_id, enrollment.phase) == ("s1", "resume")


def test_two_ticks_at_once_never_run_the_same_step(make_account, tags, make_customer):
    from cdp.models import Customer

    journey = published(
        {
            "nodes": [
                node("t1", "event_trigger", event="signed_up"),
                node("a1", "add_score", points=5),
                node("g1", "add_tag", tag="lead", ends=["default"]),
            ],
            "edges": [edge("t1", "a1"), edge("a1", "g1")],
        }
    )
    customers = Customer.objects.bulk_create([Customer(name=f"客户{i}") for i in range(400)])
    version = journey.versions.get()
    Enrollment.objects.bulk_create(
        [
            Enrollment(
                journey=journey,
                version=version,
                customer=customer,
                entry_key="once",
                node_id="t1",
                visits={"t1": 1},
                wake_at=timezone.now(),
                enrolled_at=timezone.now(),
            )
            for customer in customers
        ]
    )
    counted: list[int] = []
    start = threading.Barrier(2)

    def run():
        try:
            start.wait()
            # A budget no loaded machine runs out of: this is about who runs a step, not how fast.
            counted.append(tick(batch=20, budget_seconds=600))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counted) == 400 * 3
    assert Step.objects.count() == 400 * 3
    assert Enrollment.objects.filter(status="completed").count() == 400
    assert CustomerTag.objects.filter(tag__key="lead").count() == 400
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT customer_id) FROM segments_scoreentry")
        assert cursor.fetchone() == (400, 400)
    assert all(counted)  # both ticks did part of the work


def test_a_node_that_cannot_run_fails_its_enrollment_and_the_engine_goes_on(tags, make_customer):
    graph = {
        "nodes": [
            node("t1", "event_trigger", event="signed_up"),
            node("g1", "add_tag", tag="lead", ends=["default"]),
        ],
        "edges": [edge("t1", "g1")],
    }
    broken, healthy = published(graph, name="坏的"), published(graph, name="好的")
    # The broken journey's published version names a node type this release no longer has.
    version = JourneyVersion.objects.get(journey=broken)
    version.graph["nodes"][1]["type"] = "retired_node_type"
    version.save()
    engine._compiled.clear()
    customer = make_customer()
    track(customer, "signed_up")
    events_match(customer_ids=[customer.pk])
    failed = Enrollment.objects.get(journey=broken)
    assert failed.status == "failed"
    assert "retired_node_type" in failed.reason
    assert Enrollment.objects.get(journey=healthy).status == "completed"
    assert CustomerTag.objects.filter(customer=customer, tag__key="lead").exists()


def test_a_tag_removed_after_publishing_fails_the_enrollment_with_the_reason(tags, make_customer):
    journey = published(
        {
            "nodes": [
                node("t1", "event_trigger", event="signed_up"),
                node("g1", "add_tag", tag="lost", ends=["default"]),
            ],
            "edges": [edge("t1", "g1")],
        }
    )
    tags["lost"].delete()
    customer = make_customer()
    track(customer, "signed_up")
    events_match(customer_ids=[customer.pk])
    enrollment = Enrollment.objects.get(journey=journey)
    assert (enrollment.status, enrollment.reason) == ("failed", "g1: The tag “lost” no longer exists.")


def test_paused_journeys_hold_customers_and_new_versions_move_no_one(tags, make_customer):
    graph = {
        "nodes": [
            node("t1", "event_trigger", event="signed_up"),
            node("d1", "delay", seconds=60),
            node("g1", "add_tag", tag="lead", ends=["default"]),
        ],
        "edges": [edge("t1", "d1"), edge("d1", "g1")],
    }
    journey = published(graph)
    first, second = make_customer(), make_customer(name="李雷", phone="+8613900139000")
    with time_machine.travel(timezone.now(), tick=False) as clock:
        track(first, "signed_up")
        events_match(customer_ids=[first.pk])
        # Version 2 tags "bought" instead; the customer in flight stays on version 1.
        graph["nodes"][2]["config"]["tag"] = "bought"
        journey_save(name=journey.name, journey=journey, actor=None, draft_graph=graph)
        journey_publish(journey=journey, actor=None)
        track(second, "signed_up")
        events_match(customer_ids=[second.pk])
        journey_set_status(journey=journey, status="paused", actor=None)
        clock.shift(dt.timedelta(minutes=5))
        assert tick() == 0
        journey_set_status(journey=journey, status="active", actor=None)
        tick()
    versions = dict(Enrollment.objects.values_list("customer_id", "version__number"))
    assert versions == {first.pk: 1, second.pk: 2}
    assert CustomerTag.objects.filter(customer=first, tag__key="lead").exists()
    assert CustomerTag.objects.filter(customer=second, tag__key="bought").exists()


def test_entry_policies(tags, make_customer):
    graph = {
        "nodes": [node("t1", "event_trigger", event="cart_abandoned"), node("x1", "exit")],
        "edges": [edge("t1", "x1")],
    }
    once = published(graph, name="once")
    per_cart = published(graph, name="per cart", entry_policy="once_per_key", entry_key_property="cart_id")
    cooldown = published(graph, name="cooldown", entry_policy="after_cooldown", cooldown_seconds=3600)
    customer = make_customer()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        for cart in ("a", "b", "a"):
            track(customer, "cart_abandoned", {"cart_id": cart})
            events_match(customer_ids=[customer.pk])
            clock.shift(dt.timedelta(minutes=40))
        events_match(customer_ids=[customer.pk])  # the same events seen again enroll nobody
    assert once.enrollments.count() == 1
    assert sorted(per_cart.enrollments.values_list("entry_key", flat=True)) == ["key:a", "key:b"]
    assert cooldown.enrollments.count() == 2  # the second cart came within the hour


def test_a_batch_of_sends_writes_one_message_each_and_a_replayed_batch_writes_none(
    make_account, sms_template, make_customer
):
    """Thirty customers reach the send in one batch: each gets their own message, to their own phone,
    rendered with their own name; a customer without a phone is skipped and leaves by "failed". The
    batch replayed from before the send writes no message and no step again."""
    sms = make_account()
    graph = {
        "nodes": [
            node("t1", "event_trigger", event="signed_up"),
            node("d1", "delay", seconds=60),
            node("s1", "send", account=sms.pk, template="cart-sms", ends=["delivered", "no_response"]),
            node("x1", "exit"),
        ],
        "edges": [edge("t1", "d1"), edge("d1", "s1"), edge("s1", "x1", "failed")],
    }
    customers = [make_customer(name=f"客户{n}", phone=f"+86139001390{n:02d}") for n in range(30)]
    no_phone = make_customer(name="没有手机", phone="")
    with an_hour_ago():
        published(graph)
        for customer in [*customers, no_phone]:
            track(customer, "signed_up")
        events_match(customer_ids=[customer.pk for customer in [*customers, no_phone]])
    fields = ["node_id", "visit", "visits", "phase", "status", "wake_at", "waiting_events", "waiting_match"]
    before_send = {e["id"]: e for e in Enrollment.objects.values("id", *fields)}
    tick()

    sent = {m.customer_id: m for m in Message.objects.all()}
    assert len(sent) == 31
    for n, customer in enumerate(customers):
        message = sent[customer.pk]
        assert (message.status, message.recipient) == ("queued", f"+86139001390{n:02d}")
        assert message.content["params"] == {"name": f"客户{n}"}
        assert message.idempotency_key == f"journey:{message.enrollment_id}:s1:1"
    assert (sent[no_phone.pk].status, sent[no_phone.pk].reason) == (
        "skipped",
        "The customer has no phone number.",
    )
    skipped = Enrollment.objects.get(customer=no_phone)
    assert (skipped.status, steps_of(skipped)) == (
        "completed",
        [("t1", "default"), ("d1", "default"), ("s1", "failed"), ("x1", "end")],
    )
    waiting = Enrollment.objects.filter(node_id="s1", phase="resume", status="active")
    assert waiting.count() == 30
    steps = Step.objects.count()

    for enrollment_id, state in before_send.items():
        Enrollment.objects.filter(pk=enrollment_id).update(**{name: state[name] for name in fields})
    tick()
    assert Message.objects.count() == 31
    assert Step.objects.count() == steps
    assert Event.objects.filter(name="message_skipped").count() == 1
    assert Enrollment.objects.filter(node_id="s1", phase="resume", status="active").count() == 30
    assert Enrollment.objects.get(customer=no_phone).status == "completed"
