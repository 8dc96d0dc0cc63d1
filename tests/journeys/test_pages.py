"""The journey pages: the list with each journey's numbers, a journey's page with its steps' counts
kept live over the websocket, conversion per version, pause / resume / archive, and the customers
waiting at a step."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from cdp.asgi import application
from journeys.engine import tick
from journeys.matching import events_match
from journeys.models import Journey
from tests.asyncrun import run
from tests.journeys.conftest import edge, node, published, track

CART_GRAPH = {
    "nodes": [
        node("t1", "event_trigger", event="cart_abandoned", label="加购未付款"),
        node("d1", "delay", seconds=3600, label="等 1 小时"),
        node("g1", "add_tag", tag="lost", ends=["default"]),
    ],
    "edges": [edge("t1", "d1"), edge("d1", "g1")],
}


def text(response) -> str:
    return response.content.decode()


@pytest.fixture
def marketer(client, user_in_role):
    client.force_login(user_in_role("Marketer"))
    return client


def test_the_list_shows_each_journey_with_its_numbers_or_the_empty_state(marketer, tags, make_customer):
    empty = text(marketer.get("/journeys/"))
    assert "暂无旅程" in empty and 'data-island="journey-preview"' in empty

    journey = published(CART_GRAPH)
    for number in range(3):
        customer = make_customer(name=f"客户{number}", phone=f"+86138001380{number:02d}")
        track(customer, "cart_abandoned")
        events_match(customer_ids=[customer.pk])
    page = text(marketer.get("/journeys/"))
    row = re.search(rf'<tr data-journey="{journey.pk}">(.*?)</tr>', page, re.S).group(1)
    assert "购物车挽回" in row and "已启用" in row and "v1" in row
    assert [int(n) for n in re.findall(r'<td class="numeric">(\d+)', row)] == [3, 3, 0]


def test_a_journeys_page_counts_each_step_and_lists_who_waits_there(marketer, tags, make_customer):
    journey = published(CART_GRAPH)
    customer = make_customer(name="赵敏")
    track(customer, "cart_abandoned")
    events_match(customer_ids=[customer.pk])

    page = text(marketer.get(f"/journeys/{journey.pk}/"))
    waiting = re.search(r'<tr data-node="d1">(.*?)</tr>', page, re.S).group(1)
    assert "等 1 小时" in waiting
    assert re.search(r'data-count="entered">1<', waiting)
    assert f'href="/journeys/{journey.pk}/nodes/d1/">1</a>' in waiting
    trigger = re.search(r'<tr data-node="t1">(.*?)</tr>', page, re.S).group(1)
    assert re.search(r'handle-count__name">default</span> 1', trigger)
    assert re.search(r'data-stat="active">1<', page)
    assert 'id="journey-versions"' in page and "v1" in page

    at_delay = text(marketer.get(f"/journeys/{journey.pk}/nodes/d1/"))
    assert "赵敏" in at_delay and f'data-customer="{customer.pk}"' in at_delay
    assert "138****8000" in at_delay  # masked for a role that may not see phone numbers
    assert "此步骤暂时没有客户" in text(marketer.get(f"/journeys/{journey.pk}/nodes/g1/"))


def test_managers_pause_resume_and_archive_and_analysts_only_look(
    marketer, tags, client_factory, user_in_role
):
    journey = published(CART_GRAPH)
    page = text(marketer.get(f"/journeys/{journey.pk}/"))
    assert f'action="/journeys/{journey.pk}/pause/"' in page

    response = marketer.post(f"/journeys/{journey.pk}/pause/", follow=True)
    assert Journey.objects.get(pk=journey.pk).status == "paused"
    assert "已暂停" in text(response) and f'action="/journeys/{journey.pk}/resume/"' in text(response)
    again = marketer.post(f"/journeys/{journey.pk}/pause/", follow=True)  # already paused
    assert "不能变为" in text(again)
    marketer.post(f"/journeys/{journey.pk}/resume/")
    assert Journey.objects.get(pk=journey.pk).status == "active"

    analyst = client_factory()
    analyst.force_login(user_in_role("Analyst", username="kan"))
    assert "/pause/" not in text(analyst.get(f"/journeys/{journey.pk}/"))
    assert analyst.post(f"/journeys/{journey.pk}/archive/").status_code == 403
    assert Journey.objects.get(pk=journey.pk).status == "active"


@pytest.mark.django_db(transaction=True)
def test_an_open_journey_page_is_told_when_customers_move(
    client, user_in_role, tags, make_customer, realtime_on_redis
):
    graph = {
        "nodes": [
            node("t1", "event_trigger", event="cart_abandoned"),
            node("d1", "delay", seconds=60, ends=["default"]),
        ],
        "edges": [edge("t1", "d1")],
    }
    journey = published(graph)
    customer = make_customer()
    client.force_login(user_in_role("Analyst"))
    headers = [
        (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
        (b"origin", b"http://testserver"),
    ]

    async def watch() -> dict:
        communicator = WebsocketCommunicator(application, f"/ws/journeys/{journey.pk}/live/", headers=headers)
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        try:
            await sync_to_async(track)(customer, "cart_abandoned")
            await sync_to_async(events_match)(customer_ids=[customer.pk])
            return await communicator.receive_json_from(timeout=5)
        finally:
            await communicator.disconnect()

    assert run(watch()) == {"moved": True}
    tick()

    async def refused() -> int:
        anonymous = WebsocketCommunicator(
            application, f"/ws/journeys/{journey.pk}/live/", headers=[(b"origin", b"http://testserver")]
        )
        connected, code = await anonymous.connect(timeout=5)
        return code if not connected else 0

    assert run(refused()) == 4401


def test_a_manager_starts_a_new_journey_on_the_canvas(marketer, user_in_role, client):
    assert 'action="/journeys/new/"' in text(marketer.get("/journeys/"))
    response = marketer.post("/journeys/new/")
    journey = Journey.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/journeys/{journey.pk}/edit/"
    assert journey.status == "draft" and journey.draft_graph == {"nodes": [], "edges": []}
    assert journey.name == "新旅程"
    assert 'data-island="journey-editor"' in text(marketer.get(response["Location"]))
    edit_link = f'href="/journeys/{journey.pk}/edit/">'
    assert f"{edit_link}在画布上编辑" in text(marketer.get(f"/journeys/{journey.pk}/"))

    client.force_login(user_in_role("Analyst"))  # the same test client, now an analyst's
    assert 'action="/journeys/new/"' not in text(client.get("/journeys/"))
    assert client.post("/journeys/new/").status_code == 403
    assert f"{edit_link}打开画布" in text(client.get(f"/journeys/{journey.pk}/"))

    # Analysts open the canvas to look: the island is told it may not edit.
    page = text(client.get(f"/journeys/{journey.pk}/edit/"))
    setup = re.search(r'id="journey-canvas-setup" type="application/json">(.*?)</script>', page, re.S)
    assert '"canEdit": false' in setup.group(1)


def test_a_marketer_test_runs_a_journey_for_one_customer_and_nothing_stays(
    marketer, tags, make_customer, client_factory, user_in_role
):
    from journeys.models import Enrollment

    journey = published(CART_GRAPH)
    customer = make_customer(name="赵敏", phone="+8613800138000")
    assert f'href="/journeys/{journey.pk}/test/"' in text(marketer.get(f"/journeys/{journey.pk}/"))
    refused = text(marketer.post(f"/journeys/{journey.pk}/test/", {"customer": "13999999999"}))
    assert "请指定一位客户" in refused
    assert f'href="/journeys/{journey.pk}/edit/" id="test-on-canvas"' in refused  # the canvas's test run

    page = text(marketer.post(f"/journeys/{journey.pk}/test/", {"customer": "138 0013 8000", "version": "1"}))
    steps = re.findall(r'<tr data-node="([^"]+)">', page)
    assert steps == ["t1", "d1", "g1"]  # the hour's delay passed at once
    assert "赵敏" in page and "加购未付款" in page
    assert not Enrollment.objects.exists() and not customer.tags.exists()  # nothing stays

    analyst = client_factory()
    analyst.force_login(user_in_role("Analyst", username="kan"))
    assert analyst.get(f"/journeys/{journey.pk}/test/").status_code == 403
