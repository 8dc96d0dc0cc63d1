"""A journey's page flags the steps whose customers wait longer than expected: those the engine should
have moved on, and those whose message is still not sent, each with how many, since when and why."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
import time_machine
from django.utils import timezone

from connectors.accounts import account_pause
from journeys.engine import tick
from journeys.matching import events_match
from journeys.models import Journey
from tests.journeys.conftest import edge, node, published, track

pytestmark = pytest.mark.django_db(transaction=True)

DELAY_GRAPH = {
    "nodes": [
        node("t1", "event_trigger", event="cart_abandoned", label="加购未付款"),
        node("d1", "delay", seconds=3600, label="等 1 小时"),
        node("g1", "add_tag", tag="lost", ends=["default"]),
    ],
    "edges": [edge("t1", "d1"), edge("d1", "g1")],
}


def send_graph(account_id: int) -> dict:
    return {
        "nodes": [
            node("t1", "event_trigger", event="cart_abandoned"),
            node(
                "s1",
                "send",
                account=account_id,
                template="cart-sms",
                label="短信提醒",
                ends=["delivered", "failed", "no_response"],
            ),
        ],
        "edges": [edge("t1", "s1")],
    }


@pytest.fixture
def clock():
    with time_machine.travel(timezone.now().replace(microsecond=0), tick=False) as traveller:
        yield traveller


@pytest.fixture
def marketer(client, user_in_role):
    client.force_login(user_in_role("Marketer"))
    return client


def late(client, journey: Journey, language: str = "en") -> dict[str, str]:
    """The "waiting longer than expected" box: per step id, its words (badge and reasons)."""
    page = client.get(f"/journeys/{journey.pk}/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
    flagged = {}
    for node_id, body in re.findall(r'<li data-late-node="([^"]+)">(.*?)</li>', page, re.S):
        text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))).strip()
        flagged[node_id] = text
    return flagged


def row_badge(client, journey: Journey, node_id: str) -> str | None:
    page = client.get(f"/journeys/{journey.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    row = re.search(rf'<tr data-node="{node_id}">(.*?)</tr>', page, re.S).group(1)
    found = re.search(r'data-late="(\d+)"', row)
    return found and found.group(1)


def test_customers_the_engine_should_have_moved_on_are_flagged_until_it_does(
    marketer, tags, make_customer, clock
):
    journey = published(DELAY_GRAPH)
    customers = [make_customer(name=f"客户{n}", phone=f"+86138001380{n:02d}") for n in range(2)]
    for customer in customers:
        track(customer, "cart_abandoned")
    events_match(customer_ids=[customer.pk for customer in customers])
    woke = timezone.localtime() + dt.timedelta(hours=1)

    clock.shift(dt.timedelta(hours=1, seconds=30))  # due, within what the tick and sweep allow
    assert late(marketer, journey) == {}

    clock.shift(dt.timedelta(minutes=2, seconds=30))  # nobody ran the engine since they were due
    assert late(marketer, journey) == {
        "d1": (
            f"等 1 小时 Delay d1 2 late since {woke:%m-%d %H:%M} Who waits there "
            f"2 customers should have moved on since {woke:%H:%M:%S}, 3 minutes ago. "
            "The journey engine has not moved them on. An admin can see what is wrong at /healthz."
        )
    }
    assert row_badge(marketer, journey, "d1") == "2"
    chinese = late(marketer, journey, "zh-hans")["d1"]
    assert "2 位客户本应自" in chinese and "3 分钟前" in chinese and "等待超出预期" not in chinese

    tick()
    assert late(marketer, journey) == {}
    assert row_badge(marketer, journey, "d1") is None


def test_a_paused_journey_flags_nobody_for_not_moving(marketer, tags, make_customer, clock):
    from journeys.services import journey_set_status

    journey = published(DELAY_GRAPH)
    customer = make_customer()
    track(customer, "cart_abandoned")
    events_match(customer_ids=[customer.pk])
    journey_set_status(journey=journey, status=Journey.Status.PAUSED, actor=None)
    clock.shift(dt.timedelta(hours=2))
    assert late(marketer, journey) == {}


def test_a_send_steps_messages_still_queued_are_flagged_with_why(
    marketer, tags, make_customer, make_account, sms_template, clock
):
    account = make_account(name="短信沙箱")
    journey = published(send_graph(account.pk))
    customer = make_customer()
    track(customer, "cart_abandoned")
    events_match(customer_ids=[customer.pk])
    sent_at = timezone.localtime()
    assert journey.enrollments.get().node_id == "s1"  # its message is queued, no dispatcher runs

    clock.shift(dt.timedelta(seconds=30))
    assert late(marketer, journey) == {}

    clock.shift(dt.timedelta(minutes=2, seconds=30))
    assert late(marketer, journey) == {
        "s1": (
            f"短信提醒 Send a message s1 1 late since {sent_at:%m-%d %H:%M} Who waits there "
            f"1 message sent here has waited since {sent_at:%H:%M:%S} (3 minutes). Due for 3 minutes and "
            "nothing here explains the wait: no dispatch worker seems to be taking this account's messages. "
            "An admin can see what is wrong at /healthz."
        )
    }

    account_pause(account_id=account.pk, reason="The provider says the balance is used up.")
    paused_at = timezone.localtime()
    words = late(marketer, journey)["s1"]
    assert words.endswith(
        f"The account “短信沙箱” has been paused since {paused_at:%H:%M:%S}: The provider says the "
        "balance is used up. It goes once an admin resumes the account."
    )
    assert "账号“短信沙箱”自" in late(marketer, journey, "zh-hans")["s1"]
