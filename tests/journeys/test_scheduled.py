"""Scheduled audiences: a segment's members enter at a moment or on a daily / weekly recurrence in a
time zone, once per occurrence however many beats tick, in chunks that a lost worker's successor goes
on with, under the journey's entry policy."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
import time_machine
from django.utils import timezone

from cdp.models import Customer
from journeys.audiences import scheduled_audiences_enroll, scheduled_runs_continue, scheduled_runs_start
from journeys.engine import tick
from journeys.models import Enrollment, ScheduledRun, Step
from journeys.services import journey_set_status
from segments.models import CustomerTag, Segment
from segments.services import segment_refresh, segment_save
from tests.journeys.conftest import edge, node, published

pytestmark = pytest.mark.django_db(transaction=True)
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


@pytest.fixture
def hangzhou(db):
    """Five customers in Hangzhou (the segment), two elsewhere."""
    customers = [Customer.objects.create(name=f"杭州{n}", traits={"city": "杭州"}) for n in range(5)]
    Customer.objects.create(name="北京", traits={"city": "北京"})
    Customer.objects.create(name="上海", traits={"city": "上海"})
    segment = segment_save(
        key="hangzhou", name="杭州客户", rule_data={"trait": "city", "op": "eq", "value": "杭州"}, actor=None
    )
    segment_refresh(segment=Segment.objects.get(pk=segment.pk))
    return customers


def scheduled_graph(**when) -> dict:
    return {
        "nodes": [
            node("t1", "scheduled_trigger", segment="hangzhou", **when),
            node("g1", "add_tag", tag="lead", ends=["default"]),
        ],
        "edges": [edge("t1", "g1")],
    }


def tagged() -> int:
    return CustomerTag.objects.filter(tag__key="lead").count()


def test_a_segment_enters_once_at_its_moment_and_runs_on_the_next_tick(hangzhou, tags):
    moment = timezone.now() + dt.timedelta(hours=2)
    journey = published(scheduled_graph(repeat="once", at=moment.isoformat()))
    assert scheduled_audiences_enroll() == 0  # not yet
    with time_machine.travel(moment + dt.timedelta(seconds=1), tick=False):
        assert scheduled_audiences_enroll() == 5
        assert scheduled_audiences_enroll() == 0  # the occurrence is done: nobody enters twice
        tick()
    assert tagged() == 5
    assert set(Enrollment.objects.values_list("customer_id", flat=True)) == {c.pk for c in hangzhou}
    assert set(Enrollment.objects.values_list("status", flat=True)) == {"completed"}
    # The trigger's step is written with the entry, as an event trigger's would be.
    assert sorted(Step.objects.filter(node_id="t1").values_list("outcome", flat=True)) == ["default"] * 5
    run = ScheduledRun.objects.get(journey=journey)
    assert (run.enrolled, run.finished_at is not None) == (5, True)


def test_a_daily_recurrence_reads_its_time_zone_and_the_entry_policy(hangzhou, tags):
    # Published on Monday at 10:00 in Shanghai: 09:00 has passed today, so the first run is Tuesday's.
    monday_ten = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)
    with time_machine.travel(monday_ten, tick=False) as clock:
        again = published(
            scheduled_graph(repeat="daily", time="09:00", time_zone="Asia/Shanghai"),
            name="每天",
            entry_policy="after_cooldown",
            cooldown_seconds=3600,
        )
        once = published(
            scheduled_graph(repeat="daily", time="09:00", time_zone="Asia/Shanghai"), name="一次"
        )
        assert scheduled_audiences_enroll() == 0
        clock.move_to(dt.datetime(2026, 11, 24, 8, 59, tzinfo=SHANGHAI))
        assert scheduled_audiences_enroll() == 0
        clock.move_to(dt.datetime(2026, 11, 24, 9, 0, 5, tzinfo=SHANGHAI))
        assert scheduled_audiences_enroll() == 10  # five into each journey
        tick()
        clock.move_to(dt.datetime(2026, 11, 25, 9, 0, 5, tzinfo=SHANGHAI))
        assert scheduled_audiences_enroll() == 5  # again after the cooldown; "once" never again
    assert again.enrollments.count() == 10
    assert once.enrollments.count() == 5
    occurrences = sorted(ScheduledRun.objects.filter(journey=again).values_list("occurrence", flat=True))
    assert [moment.astimezone(SHANGHAI).strftime("%a %H:%M") for moment in occurrences] == [
        "Tue 09:00",
        "Wed 09:00",
    ]


def test_a_weekly_recurrence_runs_on_its_weekdays_only(hangzhou, tags):
    with time_machine.travel(dt.datetime(2026, 11, 23, 8, 0, tzinfo=SHANGHAI), tick=False) as clock:
        published(scheduled_graph(repeat="weekly", time="09:30", weekdays=[3, 5], time_zone="Asia/Shanghai"))
        for day in range(23, 30):
            clock.move_to(dt.datetime(2026, 11, day, 23, 0, tzinfo=SHANGHAI))
            scheduled_audiences_enroll()
    runs = ScheduledRun.objects.order_by("occurrence").values_list("occurrence", flat=True)
    assert [moment.astimezone(SHANGHAI).strftime("%a %d") for moment in runs] == ["Wed 25", "Fri 27"]


def test_a_run_goes_on_in_chunks_after_its_worker_is_lost_and_waits_while_paused(hangzhou, tags):
    moment = timezone.now() - dt.timedelta(seconds=5)
    journey = published(scheduled_graph(repeat="once", at=moment.isoformat()))
    (run,) = scheduled_runs_start(now=timezone.now())
    assert scheduled_runs_start(now=timezone.now()) == []  # a second beat starts nothing
    # A worker enrolls two members, then dies; its committed chunk stays, the next tick goes on.
    assert scheduled_runs_continue(chunk=2, budget_seconds=0.000001) == 2
    run.refresh_from_db()
    assert (run.enrolled, run.finished_at) == (2, None)
    journey_set_status(journey=journey, status="paused", actor=None)
    assert scheduled_runs_continue(chunk=2) == 0
    journey_set_status(journey=journey, status="active", actor=None)
    assert scheduled_runs_continue(chunk=2) == 3
    run.refresh_from_db()
    assert run.enrolled == 5 and run.finished_at is not None
    assert Enrollment.objects.count() == 5
    tick()
    assert tagged() == 5


@pytest.fixture
def marketer(client, user_in_role):
    client.force_login(user_in_role("Marketer"))
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def test_publishing_checks_the_schedule_and_the_segment(marketer, hangzhou):
    graph = {
        "nodes": [
            node("t1", "scheduled_trigger", segment="hangzhou", repeat="weekly", time="09:00"),
            node("t2", "scheduled_trigger", segment="nobody", repeat="once", at="2026-12-01T09:00:00+08:00"),
            node("t3", "scheduled_trigger", segment="hangzhou", repeat="daily", time="9am"),
            node("x1", "exit"),
        ],
        "edges": [edge("t1", "x1"), edge("t2", "x1"), edge("t3", "x1")],
    }
    response = marketer.post("/api/journeys/validate/", {"graph": graph}, content_type="application/json")
    problems = {(problem["node"], problem["message"]) for problem in response.json()["problems"]}
    assert ("t1", "give the weekdays, 1 (Monday) to 7 (Sunday)") in problems
    assert ("t2", "There is no segment with the key “nobody”.") in problems
    assert any(node_id == "t3" and "pattern" in message for node_id, message in problems), problems
