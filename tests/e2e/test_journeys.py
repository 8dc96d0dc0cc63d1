"""A marketer watches a published journey's page while customers enter it: the counts of the journey
and of each step change on the open page, pushed over the websocket by the worker that moved them."""

import re
from io import StringIO

from django.core.management import call_command
from playwright.sync_api import expect

from cdp.models import Source
from tests.e2e.conftest import journey_worker_start, log_in, screenshot
from tests.e2e.test_customers import post_track
from tests.journeys.conftest import edge, node, published


def test_a_marketer_sees_customers_enter_a_live_journey(new_page, app_server):
    call_command("create_source", "--name", "官网", "--kind", "web", stdout=StringIO())
    source = Source.objects.get()
    journey = published(
        {
            "nodes": [
                node("t1", "event_trigger", event="Cart Abandoned", label="加购未付款"),
                node("d1", "delay", seconds=3600, label="等 1 小时", ends=["default"]),
            ],
            "edges": [edge("t1", "d1")],
        }
    )
    journey_worker_start(app_server)

    marketer = new_page("zh-CN")
    log_in(marketer, app_server.url, "marketer", "demo-marketer")
    marketer.goto(f"{app_server.url}/journeys/")
    marketer.get_by_role("link", name="购物车挽回").click()
    stats = marketer.locator("#journey-stats")
    expect(marketer.locator("#journey-stats[data-live=connected]")).to_have_count(1)
    expect(stats.locator('[data-stat="active"]')).to_have_text("0")

    for number in range(2):
        body = {
            "userId": f"cart-{number}",
            "event": "Cart Abandoned",
            "properties": {"cart_id": f"c-{number}"},
        }
        assert post_track(app_server.url, source, body) == 200
    expect(stats.locator('[data-stat="active"]')).to_have_text("2", timeout=20_000)
    expect(stats.locator('[data-stat="entered"]')).to_have_text("2")
    waiting = marketer.locator('#journey-nodes [data-node="d1"] [data-count="waiting"]')
    expect(waiting).to_have_text("2")
    expect(marketer.locator('#journey-nodes [data-node="t1"] [data-count="left"]')).to_contain_text(
        "default 2"
    )
    screenshot(marketer, "journey-live")

    waiting.get_by_role("link").click()
    expect(marketer.locator("#node-customers tr[data-customer]")).to_have_count(2)
    assert journey.enrollments.count() == 2


def test_a_marketer_starts_a_journey_from_the_gallery(new_page, app_server):
    from journeys.gallery import TEMPLATES

    marketer = new_page("zh-CN")
    log_in(marketer, app_server.url, "marketer", "demo-marketer")
    marketer.goto(f"{app_server.url}/journeys/")
    marketer.get_by_role("link", name="从模板开始").click()
    cards = marketer.locator(".gallery__card")
    expect(cards).to_have_count(len(TEMPLATES))
    live = marketer.locator('.gallery__card[data-template="live-stream-signup"]')
    expect(live.locator(".react-flow__node").first).to_be_visible()  # each template drawn
    screenshot(marketer, "journey-gallery")
    live.get_by_role("button", name="使用此模板").click()
    expect(marketer).to_have_url(re.compile(r"/journeys/\d+/edit/$"))
    expect(marketer.locator(".react-flow__node").first).to_be_visible()
