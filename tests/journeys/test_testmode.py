"""Test mode: the live-stream sign-up draft run for one customer on a simulated clock, over the API.
The WeChat sandbox refuses the template, the SMS goes out instead, the menu click (given or not)
decides the branch two simulated hours later, and afterwards nothing of the run is left: no
enrollment, message, tag, event or version, and the customer's real enrollment goes on untouched."""

from __future__ import annotations

import datetime as dt

import pytest

from cdp.models import Event
from connectors.models import Message, SandboxDelivery
from journeys.models import Enrollment, Journey, JourneyVersion, StaffTask, Step
from journeys.services import journey_save
from segments.models import CustomerTag
from tests.journeys.conftest import edge, node, published, track

pytestmark = pytest.mark.django_db(transaction=True)
OPENID = "o-sandbox-openid-1"


@pytest.fixture
def marketer(client, user_in_role):
    client.force_login(user_in_role("Marketer"))
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


@pytest.fixture
def live_stream(make_account, sms_template, wechat_template, tags) -> Journey:
    wechat = make_account(
        kind="sandbox_wechat_template",
        name="公众号沙箱",
        appid="wx0000sandbox00000",
        error_rate=1.0,
        error_code="43004",
    )
    sms = make_account()
    graph = {
        "nodes": [
            node("t1", "form_submitted_trigger", form="live-signup", label="直播报名表单"),
            node("a1", "add_tag", tag="lead"),
            node("s1", "send", account=wechat.pk, template="cart-wechat", label="报名成功模板消息"),
            node("s2", "send", account=sms.pk, template="cart-sms", ends=["failed", "no_response"]),
            node("w1", "wait_for_event", event="Menu Clicked", timeout_seconds=7200, label="两小时内点菜单?"),
            node("g1", "add_tag", tag="bought", ends=["default"]),
            node("g2", "add_tag", tag="lost", ends=["default"]),
        ],
        "edges": [
            edge("t1", "a1"),
            edge("a1", "s1"),
            edge("s1", "s2", "failed"),
            edge("s1", "w1", "delivered"),
            edge("s1", "w1", "no_response"),
            edge("s2", "w1", "delivered"),
            edge("w1", "g1", "happened"),
            edge("w1", "g2", "timed_out"),
        ],
    }
    return journey_save(name="直播报名跟进", actor=None, draft_graph=graph)


def run(client, journey, **body):
    response = client.post(f"/api/journeys/{journey.pk}/test/", body, content_type="application/json")
    assert response.status_code == 200, response.json()
    return response.json()


def path_of(result) -> list[tuple[str, str]]:
    return [(step["node"], step["outcome"]) for step in result["steps"]]


def test_the_draft_runs_on_a_simulated_clock_with_the_sandbox_and_leaves_nothing(
    marketer, live_stream, make_customer
):
    customer = make_customer(openid=OPENID)
    events_before = Event.objects.count()

    clicked = run(
        marketer,
        live_stream,
        customer_id=customer.pk,
        context={"form_id": "live-signup", "live_title": "双11选品直播"},
        events=[{"name": "Menu Clicked", "after_seconds": 1800, "properties": {"menu": "直播回放"}}],
    )
    assert clicked["status"] == "completed"
    assert path_of(clicked) == [
        ("t1", "default"),
        ("a1", "default"),
        ("s1", "failed"),
        ("s2", "delivered"),
        ("w1", "happened"),
        ("g1", "default"),
    ]
    failed = clicked["steps"][2]
    assert failed["label"] == "报名成功模板消息" and "43004" in failed["reason"]
    assert [(m["channel"], m["status"]) for m in clicked["messages"]] == [
        ("wechat_template", "failed"),
        ("sms", "delivered"),
    ]
    assert clicked["problems"] == []

    idle = run(marketer, live_stream, customer_id=customer.pk)
    assert path_of(idle)[-2:] == [("w1", "timed_out"), ("g2", "default")]
    wait = next(step for step in idle["steps"] if step["node"] == "w1")
    waited = dt.datetime.fromisoformat(wait["left_at"]) - dt.datetime.fromisoformat(wait["entered_at"])
    assert waited == dt.timedelta(hours=2)  # on the simulated clock: the call returned at once

    # Nothing of either run is left, and the journey is still a draft.
    assert not Enrollment.objects.exists() and not Step.objects.exists()
    assert not Message.objects.exists() and not SandboxDelivery.objects.exists()
    assert not CustomerTag.objects.filter(customer=customer).exists()
    assert Event.objects.count() == events_before
    assert not JourneyVersion.objects.exists()
    live_stream.refresh_from_db()
    assert live_stream.status == "draft"


def test_a_published_version_is_tried_beside_the_customers_real_enrollment(marketer, make_customer, tags):
    graph = {
        "nodes": [
            node("t1", "event_trigger", event="signed_up"),
            node("d1", "delay", seconds=3 * 86400),
            node(
                "k1",
                "create_task",
                title="电话回访",
                due_in_seconds=3600,
                timeout_seconds=86400,
            ),
            node("g1", "add_tag", tag="bought", ends=["default"]),
            node("g2", "add_tag", tag="lost", ends=["default"]),
            node("x1", "exit"),
        ],
        "edges": [
            edge("t1", "d1"),
            edge("d1", "k1"),
            edge("k1", "g1", "done"),
            edge("k1", "g2", "not_reached"),
            edge("k1", "x1", "timed_out"),
        ],
    }
    journey = published(graph)
    customer = make_customer()
    track(customer, "signed_up")
    from journeys.matching import events_match

    events_match(customer_ids=[customer.pk])
    real = Enrollment.objects.get()
    as_it_was = (real.node_id, real.phase, real.wake_at, real.status)

    result = run(marketer, journey, customer_id=customer.pk, version=1, outcomes={"k1": "not_reached"})
    assert path_of(result) == [("t1", "default"), ("d1", "default"), ("k1", "not_reached"), ("g2", "default")]
    assert [(task["title"], task["status"]) for task in result["tasks"]] == [("电话回访", "not_reached")]
    real.refresh_from_db()
    assert (real.node_id, real.phase, real.wake_at, real.status) == as_it_was
    assert Enrollment.objects.count() == 1 and not StaffTask.objects.exists()


def test_test_mode_names_what_is_wrong(marketer, live_stream, make_customer):
    customer = make_customer()
    response = marketer.post(
        f"/api/journeys/{live_stream.pk}/test/",
        {"customer_id": customer.pk, "version": 3},
        content_type="application/json",
    )
    assert (response.status_code, response.json()) == (400, {"version": ["This journey has no version 3."]})
    response = marketer.post(
        f"/api/journeys/{live_stream.pk}/test/", {"customer_id": 999999}, content_type="application/json"
    )
    assert (response.status_code, response.json()) == (400, {"customer_id": ["There is no customer 999999."]})
    assert "/api/journeys/{journey_id}/test/" in marketer.get("/api/schema/").content.decode()
