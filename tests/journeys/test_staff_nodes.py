"""Nodes that hand over to people: a stage set by a journey (rules take the customer further, never
back before it), and a task for the customer's owner closed on the My tasks page, whose outcome (or
nobody closing it) decides where the journey goes."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone

from cdp.models import Event
from journeys.engine import tick
from journeys.matching import events_match
from journeys.models import Enrollment, StaffTask
from segments.models import CustomerStage, ManualStage, SegmentMember
from segments.refresh import refresh_requests_take
from segments.services import segment_save
from segments.stages import stage_save, stages_refresh
from segments.tags import customers_tag
from tests.journeys.conftest import edge, node, published, track

pytestmark = pytest.mark.django_db(transaction=True)


def stage_of(customer) -> str | None:
    return CustomerStage.objects.filter(customer=customer).values_list("stage__key", flat=True).first()


def refresh_stages() -> None:
    with transaction.atomic():
        stages_refresh()


def test_a_journey_sets_a_stage_that_rules_may_pass_but_not_undo(make_customer, tags):
    customer = make_customer()
    stage_save(key="prospect", name="潜在客户", rule_data={"score": {"op": "gte", "value": 0}}, actor=None)
    stage_save(key="customer", name="成交客户", rule_data={"tag": "bought"}, actor=None)
    stage_save(key="loyal", name="忠实客户", rule_data={"tag": "lead"}, actor=None)
    assert stage_of(customer) == "prospect"
    signed = segment_save(key="signed", name="已签约", rule_data={"stage": "customer"}, actor=None)
    published(
        {
            "nodes": [
                node("t1", "event_trigger", event="contract_signed"),
                node("s1", "set_stage", stage="customer", ends=["default"]),
            ],
            "edges": [edge("t1", "s1")],
        }
    )
    track(customer, "contract_signed")
    refresh_requests_take()  # what the event itself asks for: not in the segment yet
    assert not SegmentMember.objects.filter(segment=signed, customer=customer).exists()
    events_match(customer_ids=[customer.pk])
    assert stage_of(customer) == "customer"
    moved = Event.objects.get(customer=customer, name="stage_changed", properties__to="customer")
    assert moved.properties["from"] == "prospect"
    assert ManualStage.objects.get(customer=customer).origin.startswith("journey ")

    # A segment that reads the stage follows as soon as the refresh worker has looked.
    refresh_requests_take()
    assert SegmentMember.objects.filter(segment=signed, customer=customer).exists()

    refresh_stages()  # the rules alone say "prospect": the stage the journey set holds
    assert stage_of(customer) == "customer"
    customers_tag(customer_ids=[customer.pk], tag=tags["lead"], actor=None)
    refresh_stages()  # a rule further along the path still moves them on
    assert stage_of(customer) == "loyal"


def test_setting_a_stage_that_does_not_exist_is_refused_at_publishing(marketer):
    graph = {
        "nodes": [
            node("t1", "event_trigger", event="x"),
            node("s1", "set_stage", stage="nowhere", ends=["default"]),
        ],
        "edges": [edge("t1", "s1")],
    }
    response = marketer.post("/api/journeys/validate/", {"graph": graph}, content_type="application/json")
    assert response.json()["problems"] == [
        {"node": "s1", "field": "config", "message": "There is no lifecycle stage with the key “nowhere”."}
    ]


def task_graph() -> dict:
    return {
        "nodes": [
            node("t1", "event_trigger", event="form_submitted"),
            node(
                "k1",
                "create_task",
                title="回访直播报名客户",
                note="问问是否需要样品",
                due_in_seconds=4 * 3600,
                timeout_seconds=86400,
            ),
            node("g1", "add_tag", tag="bought", ends=["default"]),
            node("g2", "add_tag", tag="lost", ends=["default"]),
            node("g3", "add_tag", tag="lead", ends=["default"]),
        ],
        "edges": [
            edge("t1", "k1"),
            edge("k1", "g1", "done"),
            edge("k1", "g2", "not_reached"),
            edge("k1", "g3", "timed_out"),
        ],
    }


@pytest.fixture
def marketer(client, user_in_role):
    client.force_login(user_in_role("Marketer"))
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def test_the_owner_closes_the_task_as_not_reached_and_the_journey_follows(
    client, user_in_role, make_customer, tags
):
    owner, colleague = user_in_role("Sales", username="xiaowang"), user_in_role("Sales", username="laoli")
    customer = make_customer()
    customer.owner = owner
    customer.save()
    published(task_graph())
    track(customer, "form_submitted")
    events_match(customer_ids=[customer.pk])
    task = StaffTask.objects.get()
    assert (task.assignee, task.title, task.status) == (owner, "回访直播报名客户", "open")
    assert task.due_at - task.created_at == dt.timedelta(hours=4)
    assert Event.objects.filter(customer=customer, name="task_created", properties__task=task.pk).exists()

    client.force_login(colleague)
    page = client.get("/tasks/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "回访直播报名客户" not in page and "No open tasks" in page
    refused = client.post(
        f"/tasks/{task.pk}/close/", {"outcome": "done"}, HTTP_ACCEPT_LANGUAGE="en", follow=True
    )
    assert "Only the person the task is for can close it." in refused.content.decode()

    client.force_login(owner)
    page = client.get("/tasks/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "回访直播报名客户" in page and "王芳" in page and "问问是否需要样品" in page
    client.post(f"/tasks/{task.pk}/close/", {"outcome": "not_reached", "note": "电话无人接听"})
    closed = Event.objects.get(customer=customer, name="task_closed")
    assert (closed.properties["outcome"], closed.properties["note"], closed.properties["by"]) == (
        "not_reached",
        "电话无人接听",
        "xiaowang",
    )
    events_match(customer_ids=[customer.pk])
    enrollment = Enrollment.objects.get()
    assert enrollment.status == "completed"
    assert list(enrollment.steps.order_by("id").values_list("node_id", "outcome")) == [
        ("t1", "default"),
        ("k1", "not_reached"),
        ("g2", "default"),
    ]
    page = client.get("/tasks/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Closed lately" in page and "电话无人接听" in page
    profile = client.get(f"/customers/{customer.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    tasks_card = profile[profile.index('id="tasks"') :]
    assert "回访直播报名客户" in tasks_card and "Not reached" in tasks_card and "电话无人接听" in tasks_card


def test_a_task_nobody_closes_times_out_and_a_customer_without_owner_gets_the_fallback(
    user_in_role, make_customer, tags
):
    fallback = user_in_role("Sales", username="duty")
    customer = make_customer()  # no owner
    graph = task_graph()
    graph["nodes"][1]["config"]["fallback_assignee"] = "duty"
    with time_machine.travel(timezone.now(), tick=False) as clock:
        published(graph)
        track(customer, "form_submitted")
        events_match(customer_ids=[customer.pk])
        assert StaffTask.objects.get().assignee == fallback
        clock.shift(dt.timedelta(hours=23))
        tick()
        assert Enrollment.objects.get().node_id == "k1"
        clock.shift(dt.timedelta(hours=1, seconds=1))
        tick()
    enrollment = Enrollment.objects.get()
    assert enrollment.steps.get(node_id="k1").outcome == "timed_out"
    assert enrollment.status == "completed"
