"""Triggers and flow nodes one by one: segment entries start journeys through the tick's sweep, goals
count conversions, random splits stay with a customer, delays end at a time of day in the customer's
own time zone."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone

from cdp.ingest import system_events_record
from journeys.engine import tick
from journeys.matching import events_match, segment_events_sweep
from journeys.models import Enrollment, Step
from journeys.selectors import journey_summary, node_counts
from segments.services import segment_save
from tests.journeys.conftest import edge, node, published, track

pytestmark = pytest.mark.django_db(transaction=True)


def test_entering_a_segment_starts_the_journey_and_the_goal_counts_it(make_customer):
    customer = make_customer()
    segment_save(
        key="hangzhou", name="杭州客户", rule_data={"trait": "city", "op": "eq", "value": "杭州"}, actor=None
    )
    journey = published(
        {
            "nodes": [node("t1", "segment_trigger", segment="hangzhou"), node("g1", "goal", exit=True)],
            "edges": [edge("t1", "g1")],
        }
    )
    # What a segment refresh writes (without the ingest signal): the tick's sweep finds it.
    with transaction.atomic():
        system_events_record(
            rows=[(customer.pk, "segment_entered")],
            kind="segment",
            properties={"segment": "hangzhou", "segment_name": "杭州客户"},
            moment=timezone.now(),
            message_prefix="test-segment-change",
            rules_follow=False,
        )
    assert segment_events_sweep() == 1
    assert segment_events_sweep() == 0  # seen again within the overlap: nobody enters twice
    enrollment = Enrollment.objects.get()
    assert (enrollment.status, enrollment.goal_reached_at is not None) == ("completed", True)
    assert journey_summary(journey=journey)["converted"] == 1


def test_a_random_split_keeps_each_customer_on_one_branch(make_customer):
    from cdp.models import Customer

    graph = {
        "nodes": [
            node("t1", "event_trigger", event="signed_up"),
            node("r1", "random_split", branches=[{"id": "a", "percent": 30}, {"id": "b", "percent": 70}]),
            node("x1", "exit"),
        ],
        "edges": [edge("t1", "r1"), edge("r1", "x1", "a"), edge("r1", "x1", "b")],
    }
    first = published(graph, name="first", entry_policy="after_cooldown", cooldown_seconds=1)
    customers = Customer.objects.bulk_create([Customer(name=f"客户{n}") for n in range(400)])
    with time_machine.travel(timezone.now(), tick=False) as clock:
        for visit in range(2):
            with transaction.atomic():
                system_events_record(
                    rows=[(customer.pk, "signed_up") for customer in customers],
                    kind="track",
                    properties={},
                    moment=timezone.now(),
                    message_prefix=f"test-signed-up-{visit}",
                )
            events_match(customer_ids=[customer.pk for customer in customers])
            clock.shift(dt.timedelta(seconds=5))
    branches: dict[int, set[str]] = {}
    for customer_id, outcome in Step.objects.filter(journey=first, node_id="r1").values_list(
        "enrollment__customer_id", "outcome"
    ):
        branches.setdefault(customer_id, set()).add(outcome)
    assert len(branches) == 400
    assert all(len(taken) == 1 for taken in branches.values())  # both visits took the same branch
    share = sum(1 for taken in branches.values() if taken == {"a"}) / 400
    assert 0.22 < share < 0.38
    assert node_counts(journey=first)["r1"]["entered"] == 800


def test_a_delay_until_a_time_of_day_reads_the_customers_time_zone(make_customer):
    tokyo = make_customer(traits={"timezone": "Asia/Tokyo"})
    site = make_customer(name="李雷", phone="+8613900139000", traits={})  # the site's zone, Asia/Shanghai
    # 2026-11-24 08:00 in Shanghai is 09:00 in Tokyo: Tokyo's 09:00 is tomorrow, Shanghai's in an hour.
    now = dt.datetime(2026, 11, 24, 8, 0, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai"))
    with time_machine.travel(now, tick=False) as clock:
        published(
            {
                "nodes": [
                    node("t1", "event_trigger", event="signed_up"),
                    node("d1", "delay", until_time="09:00"),
                    node("x1", "exit"),
                ],
                "edges": [edge("t1", "d1"), edge("d1", "x1")],
            }
        )
        for customer in (tokyo, site):
            track(customer, "signed_up")
        events_match(customer_ids=[tokyo.pk, site.pk])
        wakes = dict(Enrollment.objects.values_list("customer_id", "wake_at"))
        assert wakes[site.pk] == dt.datetime(2026, 11, 24, 9, 0, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai"))
        assert wakes[tokyo.pk] == dt.datetime(2026, 11, 25, 9, 0, tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo"))
        clock.shift(dt.timedelta(hours=1, seconds=1))
        tick()
    assert dict(Enrollment.objects.values_list("customer_id", "status")) == {
        site.pk: "completed",
        tokyo.pk: "active",
    }


def test_actions_set_a_trait_add_points_and_remove_a_tag(make_customer, tags):
    from cdp.models import Customer, Event
    from segments.models import CustomerScore, CustomerTag
    from segments.tags import customers_tag

    customer = make_customer()
    customers_tag(customer_ids=[customer.pk], tag=tags["lead"], actor=None)
    published(
        {
            "nodes": [
                node(
                    "t1",
                    "event_trigger",
                    event="order_completed",
                    where=[{"property": "amount", "op": "gte", "value": 500}],
                ),
                node("s1", "set_trait", trait="tier", value="gold"),
                node("a1", "add_score", points=20, expires_after_days=90),
                node("r1", "remove_tag", tag="lead", ends=["default"]),
            ],
            "edges": [edge("t1", "s1"), edge("s1", "a1"), edge("a1", "r1")],
        }
    )
    track(customer, "order_completed", {"amount": 120})  # filtered out by the trigger
    events_match(customer_ids=[customer.pk])
    assert not Enrollment.objects.exists()
    track(customer, "order_completed", {"amount": 800})
    events_match(customer_ids=[customer.pk])
    assert Enrollment.objects.get().status == "completed"
    customer = Customer.objects.get(pk=customer.pk)
    assert customer.traits["tier"] == "gold"
    assert Event.objects.filter(customer=customer, name="trait_set", properties__trait="tier").exists()
    assert CustomerScore.objects.get(customer=customer).points == 20
    assert not CustomerTag.objects.filter(customer=customer, tag__key="lead").exists()
