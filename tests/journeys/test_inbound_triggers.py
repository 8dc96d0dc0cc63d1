"""Triggers on what customers send us: a form submission with field filters, a follow through a
parametric QR code pushed by WeChat to the real inbound URL, and a weekday window delay in the
customer's own time zone."""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo
from urllib.parse import urlencode

import pytest
import time_machine

from cdp.models import Customer, Event, Identity
from journeys.engine import tick
from journeys.matching import events_match
from journeys.models import Enrollment
from journeys.validation import graph_validate
from tests.connectors.conftest import CALLBACK_SECRET
from tests.fakes import wechat as wechat_peer
from tests.journeys.conftest import edge, node, published, track

pytestmark = pytest.mark.django_db(transaction=True)
APPID = "wx0000sandbox00000"


def test_a_form_submission_starts_the_journey_only_for_that_form_and_its_filters(make_customer, tags):
    published(
        {
            "nodes": [
                node(
                    "t1",
                    "form_submitted_trigger",
                    form="live-signup",
                    where=[{"property": "city", "op": "eq", "value": "杭州"}],
                ),
                node("a1", "add_tag", tag="lead", ends=["default"]),
            ],
            "edges": [edge("t1", "a1")],
        }
    )
    hangzhou, beijing, other_form = (
        make_customer(),
        make_customer(name="李雷", phone="+8613900139000"),
        make_customer(name="韩梅梅", phone="+8613700137000"),
    )
    track(hangzhou, "Form Submitted", {"form_id": "live-signup", "form_name": "直播报名", "city": "杭州"})
    track(beijing, "Form Submitted", {"form_id": "live-signup", "city": "北京"})
    track(other_form, "Form Submitted", {"form_id": "trial", "city": "杭州"})
    events_match(customer_ids=[hangzhou.pk, beijing.pk, other_form.pk])
    assert list(Enrollment.objects.values_list("customer_id", "status")) == [(hangzhou.pk, "completed")]


def follower_push(openid: str, event: str, key: str = "", created: int | None = None) -> tuple[str, bytes]:
    """What WeChat pushes to the Official Account's server URL in safe mode, encrypted and signed
    as WeChat does (each push, a repeat too, with a nonce of its own)."""
    message = wechat_peer.follower_event(openid=openid, event=event, key=key, created=created)
    query, body = wechat_peer.push(message, appid=APPID, token=CALLBACK_SECRET)
    return urlencode(query), body


def test_a_follow_through_a_qr_code_creates_the_follower_and_starts_the_scene_journey(
    client, make_account, tags
):
    account = make_account(
        kind="sandbox_wechat_template", name="公众号", appid=APPID, encoding_aes_key=wechat_peer.AES_KEY
    )
    store = published(
        {
            "nodes": [
                node("t1", "wechat_trigger", on="follow", scene="store-42"),
                node("a1", "add_tag", tag="lead", ends=["default"]),
            ],
            "edges": [edge("t1", "a1")],
        },
        name="门店扫码关注",
    )
    scans = published(
        {
            "nodes": [node("t1", "wechat_trigger", on="scan"), node("x1", "exit")],
            "edges": [edge("t1", "x1")],
        },
        name="老粉扫码",
    )
    created = int(time.time())
    for _ in range(2):  # WeChat repeats a push it did not see answered in time
        query, body = follower_push("o-new-follower", "subscribe", "qrscene_store-42", created=created)
        response = client.post(f"/hooks/{account.pk}/?{query}", data=body, content_type="text/xml")
        assert (response.status_code, response.content) == (200, b"success")

    follower = Identity.objects.get(type=f"wechat_openid:{APPID}", value="o-new-follower").customer
    followed = Event.objects.get(customer=follower, name="wechat_follow")
    assert followed.properties["scene"] == "store-42"
    events_match(customer_ids=[follower.pk])
    assert store.enrollments.get().customer_id == follower.pk
    assert not scans.enrollments.exists()

    # Later the follower scans another code: the scan journey, not the follow journey.
    query, body = follower_push("o-new-follower", "SCAN", "counter-7", created=int(time.time()) + 60)
    assert client.post(f"/hooks/{account.pk}/?{query}", data=body, content_type="text/xml").status_code == 200
    events_match(customer_ids=[follower.pk])
    assert scans.enrollments.get().customer_id == follower.pk
    assert Customer.objects.filter(identities__value="o-new-follower").count() == 1


def test_a_push_with_a_wrong_signature_records_nothing(client, make_account):
    account = make_account(
        kind="sandbox_wechat_template", name="公众号", appid=APPID, encoding_aes_key=wechat_peer.AES_KEY
    )
    query, body = follower_push("o-forged", "subscribe")
    forged = query.replace("msg_signature=", "msg_signature=0")
    assert (
        client.post(f"/hooks/{account.pk}/?{forged}", data=body, content_type="text/xml").status_code == 400
    )
    assert not Event.objects.filter(name="wechat_follow").exists()


def test_a_weekday_window_waits_over_the_weekend_in_the_customers_time_zone(make_customer, tags):
    tokyo = make_customer(traits={"timezone": "Asia/Tokyo"})
    inside = make_customer(name="李雷", phone="+8613900139000", traits={})  # the site's zone, Shanghai
    # Friday 2026-11-27 17:30 in Shanghai is 18:30 in Tokyo: Tokyo's window has closed for the week.
    friday = dt.datetime(2026, 11, 27, 17, 30, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai"))
    with time_machine.travel(friday, tick=False) as clock:
        published(
            {
                "nodes": [
                    node("t1", "event_trigger", event="signed_up"),
                    node("d1", "delay", window={"days": ["mon", "tue", "wed", "thu", "fri"]}),
                    node("a1", "add_tag", tag="lead", ends=["default"]),
                ],
                "edges": [edge("t1", "d1"), edge("d1", "a1")],
            }
        )
        for customer in (tokyo, inside):
            track(customer, "signed_up")
        events_match(customer_ids=[tokyo.pk, inside.pk])
        assert Enrollment.objects.get(customer=inside).status == "completed"  # inside the window: at once
        waiting = Enrollment.objects.get(customer=tokyo)
        assert waiting.wake_at == dt.datetime(2026, 11, 30, 9, 0, tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo"))
        clock.move_to(dt.datetime(2026, 11, 30, 9, 0, 1, tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo")))
        tick()
    assert Enrollment.objects.get(customer=tokyo).status == "completed"


def test_windows_that_cannot_open_and_mixed_delays_are_refused_with_the_reason():

    graph = {
        "nodes": [
            node("t1", "event_trigger", event="signed_up"),
            node("d1", "delay", seconds=7200, window={"days": ["sat"], "start": "18:00", "end": "09:00"}),
            node("d2", "delay", until_time="09:00", window={}),
        ],
        "edges": [edge("t1", "d1"), edge("d1", "d2")],
    }
    problems = [
        (p["node"], p["field"], p["message"]) for p in graph_validate(graph) if p["node"] in {"d1", "d2"}
    ]
    assert problems == [
        ("d1", "config.window", "the window must close (end) after it opens (start)"),
        ("d2", "config.", "until_time cannot be combined with seconds or a window"),
    ]
