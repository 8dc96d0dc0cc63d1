"""A marketer draws a journey on the canvas from an empty page: steps dragged from the palette,
connected by their handles, configured in the side panel, validated (each problem on its step),
fixed and published; undo and redo; two editors of one draft; the live counts of a published
journey; a test run's path drawn on the canvas, step by step; the journey's settings."""

from __future__ import annotations

import json
import re
from datetime import date
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from cdp.models import ChannelEventDaily, Customer, Identity, Source
from connectors.accounts import account_create
from connectors.models import ChannelAccount, Message
from connectors.services import template_save
from journeys.models import Enrollment
from journeys.services import journey_save
from segments.tags import tag_save
from tests.e2e.conftest import journey_worker_start, log_in, screenshot
from tests.e2e.test_customers import post_track
from tests.journeys.conftest import edge, node, published

MENU_RULE = {
    "event": "Menu Clicked",
    "where": [{"property": "key", "op": "eq", "value": "live"}],
    "within_days": 1,
}


@pytest.fixture
def wide_page(browser, app_server):
    """A marketer's page on a wide screen (the canvas beside its palette and panel), in Chinese
    unless told otherwise."""
    contexts = []

    def open_page(username: str = "marketer", password: str = "demo-marketer", locale: str = "zh-CN"):  # noqa: S107
        context = browser.new_context(locale=locale, viewport={"width": 1920, "height": 1080})
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        log_in(page, app_server.url, username, password)
        return page

    yield open_page
    for context in contexts:
        context.close()


def canvas_node(page, node_id: str):
    return page.locator(f'.react-flow__node[data-id="{node_id}"]')


def drop_from_palette(page, node_type: str, x: int, y: int) -> None:
    """Drags a palette step onto the canvas at (x, y) of the canvas's own box."""
    page.drag_and_drop(
        f'[data-palette-type="{node_type}"]',
        ".editor-canvas .react-flow__pane",
        target_position={"x": x, "y": y},
    )


def center(locator) -> tuple[float, float]:
    box = locator.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def start_connecting(page, source: str, handle: str, target: str) -> None:
    """Presses on the source step's handle and moves to the target step's input, not letting go."""
    page.mouse.move(
        *center(canvas_node(page, source).locator(f'.react-flow__handle.source[data-handleid="{handle}"]'))
    )
    page.mouse.down()
    target_node = canvas_node(page, target)
    inlet = target_node.locator(".react-flow__handle.target")
    page.mouse.move(*center(inlet if inlet.count() else target_node), steps=12)


def connect(page, source: str, handle: str, target: str) -> None:
    start_connecting(page, source, handle, target)
    page.mouse.up()


def select_step(page, node_id: str) -> None:
    canvas_node(page, node_id).locator(".step__title").click()
    expect(page.locator(f'.panel[data-panel-node="{node_id}"]')).to_be_visible()


def open_new_journey(page, base_url: str) -> int:
    page.goto(f"{base_url}/journeys/")
    page.locator('form[action="/journeys/new/"] button').click()
    page.wait_for_url(re.compile(r"/journeys/\d+/edit/$"))
    expect(page.locator(".editor-empty")).to_be_visible()
    return int(re.search(r"/journeys/(\d+)/edit/", page.url).group(1))


def saved(page) -> None:
    expect(page.locator(".journey-editor")).to_have_attribute("data-save-state", "saved")


def api_json(page, path: str):
    response = page.request.get(f"{page.url.split('/journeys/')[0]}{path}")
    assert response.ok, response.text()
    return response.json()


def test_a_marketer_draws_configures_validates_and_publishes_a_journey(wide_page, app_server):
    tag_save(key="live-lead", name="直播线索", actor=None)
    # Rules name events the data has seen on any day (the daily rollup ingestion keeps): a fixed day,
    # so the test reads no clock here.
    ChannelEventDaily.objects.create(day=date(2026, 11, 24), channel="wechat", name="Menu Clicked", count=12)
    wechat = ChannelAccount.objects.get(kind="sandbox_wechat_template")
    sms = ChannelAccount.objects.get(kind="sandbox_sms")
    page = wide_page()
    journey_id = open_new_journey(page, app_server.url)
    expect(page.locator(".editor-empty")).to_have_text("把一个触发器拖到这里，开始搭建旅程。")
    page.get_by_label("名称").fill("直播报名跟进")

    # Stacking blocks: each step dragged from the palette to its place.
    for node_type, x, y in [
        ("event_trigger", 40, 60),
        ("add_tag", 300, 60),
        ("send", 560, 60),
        ("send", 560, 320),
        ("delay", 820, 60),
        ("condition", 820, 320),
    ]:
        drop_from_palette(page, node_type, x, y)
    ids = ["event_1", "add_tag_1", "send_1", "send_2", "delay_1", "condition_1"]
    expect(page.locator(".react-flow__node")).to_have_count(6)
    assert [page.locator(".react-flow__node").nth(i).get_attribute("data-id") for i in range(6)] == ids
    # Each step shows its labelled handles: a send's outcomes, a condition's branch and "else".
    expect(canvas_node(page, "send_1").locator(".step__out")).to_have_text(["已送达", "失败", "无回执"])
    expect(canvas_node(page, "condition_1").locator(".step__out")).to_have_text(["yes", "其他"])

    connect(page, "event_1", "default", "add_tag_1")
    connect(page, "add_tag_1", "default", "send_1")
    connect(page, "send_1", "failed", "send_2")  # the SMS fallback
    connect(page, "send_1", "delivered", "delay_1")
    connect(page, "send_2", "delivered", "delay_1")
    connect(page, "delay_1", "default", "condition_1")
    edges = page.locator(".react-flow__edge")
    expect(edges).to_have_count(6)

    # Refused while dragging: a handle that already leads somewhere shows the target as invalid…
    start_connecting(page, "send_1", "failed", "delay_1")
    expect(canvas_node(page, "delay_1").locator(".react-flow__handle.target.connectingto")).to_have_count(1)
    expect(canvas_node(page, "delay_1").locator(".react-flow__handle.target.valid")).to_have_count(0)
    page.mouse.up()
    # …and nothing leads into a trigger, nor from a step to itself.
    connect(page, "condition_1", "else", "event_1")
    connect(page, "send_2", "failed", "send_2")
    expect(edges).to_have_count(6)

    # Validate before configuring: every problem is on its step.
    page.locator("[data-validate]").click()
    expect(page.locator(".editor-problems")).to_contain_text("发布前需要解决")
    for node_id in ["event_1", "add_tag_1", "send_1", "send_2", "condition_1"]:
        expect(canvas_node(page, node_id).locator(".step--problem")).to_have_count(1)
    expect(canvas_node(page, "delay_1").locator(".step")).to_have_attribute("data-problems", "1")
    screenshot(page, "canvas-problems")
    # The list of problems leads to each one's step.
    add_tag_name = canvas_node(page, "add_tag_1").locator(".step__title").inner_text()
    page.locator(".editor-problems__step", has_text=add_tag_name).first.click()
    expect(page.locator(".panel")).to_have_attribute("data-panel-node", "add_tag_1")
    expect(page.locator('[data-field="tag"] .field__error')).to_be_visible()
    # A rule's mistake names its branch too, as the branch's handle reads.
    condition_name = canvas_node(page, "condition_1").locator(".step__title").inner_text()
    expect(page.locator(".editor-problems__step", has_text=f"{condition_name} › yes")).to_have_count(1)

    # Configure each step in its panel; mistakes show as they are typed.
    select_step(page, "event_1")
    page.locator("#field-event").fill("Live Registered")
    page.locator("#field-label").fill("直播报名")
    expect(canvas_node(page, "event_1").locator(".step__title")).to_have_text("直播报名")

    select_step(page, "add_tag_1")
    page.locator("#field-tag").fill("live-lead")

    select_step(page, "send_1")
    page.locator("#field-account").select_option(str(wechat.pk))
    page.locator("#field-template").select_option("wechat-order")
    expect(page.locator(".field__preview")).to_contain_text("您的订单已发货")
    page.locator('[data-end="no_response"]').check()
    expect(canvas_node(page, "send_1").locator(".step__summary")).to_have_text(
        f"{wechat.name} · 订单发货通知"
    )

    select_step(page, "send_2")
    page.locator("#field-account").select_option(str(sms.pk))
    page.locator("#field-template").select_option("sms-cart")
    page.locator('[data-end="failed"]').check()
    page.locator('[data-end="no_response"]').check()

    select_step(page, "delay_1")
    page.locator("#field-seconds").fill("0")
    expect(page.locator('[data-field="seconds"] .field__error')).to_have_text("至少为 1。")
    page.locator("#field-seconds").fill("2")  # hours
    expect(page.locator('[data-field="seconds"] .field__error')).to_have_count(0)
    expect(canvas_node(page, "delay_1").locator(".step__summary")).to_have_text("2 小时")

    select_step(page, "condition_1")
    page.locator("#field-branches-0-id").fill("clicked")
    page.locator("#field-branches-0-label").fill("点了直播菜单")
    # The branch's rule in the segment pages' rule builder: did "Menu Clicked" in the last day,
    # its property "key" being "live".
    builder = page.locator('[data-rule-builder="branches.0.rule"]')
    root = builder.locator(":scope > .rule-group")
    expect(root.locator(".rule-group__empty")).to_be_visible()
    root.locator(":scope > .rule-group__add select").select_option(label="事件")
    event = root.locator(".rule-leaf[data-kind=event]")
    # A misspelt name is shown at its condition, with the name the data knows.
    event.get_by_placeholder("事件名").fill("Menu Click")
    expect(event.locator(".rule-problems")).to_contain_text("Menu Clicked")
    expect(canvas_node(page, "condition_1").locator(".step--problem")).to_have_count(1)
    event.get_by_placeholder("事件名").fill("Menu Clicked")
    expect(event.locator(".rule-problems")).to_be_empty()
    event.get_by_label("时间", exact=True).select_option(label="最近 … 天内")
    event.get_by_label("天", exact=True).fill("1")
    event.get_by_role("button", name="+ 属性筛选").click()
    where = event.locator(".rule-filter")
    where.get_by_placeholder("事件属性").fill("key")
    where.get_by_placeholder("值").fill("live")
    screenshot(page, "canvas-condition-rule")
    # An edit in the builder is a change of the journey like any setting's: one undo takes it back.
    event.get_by_label("天", exact=True).fill("7")
    page.locator(".editor-canvas .react-flow__pane").click(position={"x": 600, "y": 500})
    page.keyboard.press("Control+z")
    select_step(page, "condition_1")
    expect(event.get_by_label("天", exact=True)).to_have_value("1")
    expect(where.get_by_placeholder("值")).to_have_value("live")
    # Power users may edit the same rule as JSON, and come back to the builder.
    page.locator('[data-field="branches.0.rule"] [data-rule-mode="json"]').click()
    rule_json = page.locator("#field-branches-0-rule")
    assert json.loads(rule_json.input_value()) == {"and": [MENU_RULE]}
    rule_json.fill('{"event": "Menu Clicked"')
    expect(page.locator('[data-field="branches.0.rule"] .field__error').first).to_contain_text(
        "不是有效的 JSON"
    )
    page.locator('[data-field="branches.0.rule"] [data-rule-mode="builder"]').click()
    expect(page.locator('[data-field="branches.0.rule"] .field__error')).to_have_count(0)
    expect(event.get_by_placeholder("事件名")).to_have_value("Menu Clicked")
    page.locator('[data-end="clicked"]').check()
    page.locator('[data-end="else"]').check()
    expect(canvas_node(page, "condition_1").locator(".step__out")).to_have_text(["点了直播菜单", "其他"])

    # The problems follow the drawing once shown; none are left.
    expect(page.locator(".editor-problems")).to_have_text("没有问题：旅程可以发布。")
    expect(page.locator(".step--problem")).to_have_count(0)
    page.get_by_role("button", name="自动排列").click()
    screenshot(page, "canvas-drawn")

    page.locator("[data-publish]").click()
    page.locator("#version-note").fill("首发：直播报名")
    page.locator("[data-confirm-publish]").click()
    expect(page.locator("[data-notice]")).to_contain_text("已发布第 1 版。")
    expect(page.locator("[data-status]")).to_have_attribute("data-status", "active")
    assert not page.errors

    # What was published is what was drawn.
    version = api_json(page, f"/api/journeys/{journey_id}/versions/")[0]
    assert version["note"] == "首发：直播报名"
    graph = version["graph"]
    configs = {n["id"]: (n["type"], n["config"]) for n in graph["nodes"]}
    assert configs == {
        "event_1": ("event_trigger", {"event": "Live Registered", "label": "直播报名"}),
        "add_tag_1": ("add_tag", {"tag": "live-lead"}),
        "send_1": (
            "send",
            {
                "account": wechat.pk,
                "template": "wechat-order",
                "no_response_seconds": 86400,
                "ends": ["no_response"],
            },
        ),
        "send_2": (
            "send",
            {
                "account": sms.pk,
                "template": "sms-cart",
                "no_response_seconds": 86400,
                "ends": ["failed", "no_response"],
            },
        ),
        "delay_1": ("delay", {"seconds": 7200, "time_zone": "customer"}),
        "condition_1": (
            "condition",
            {
                "branches": [{"id": "clicked", "label": "点了直播菜单", "rule": {"and": [MENU_RULE]}}],
                "ends": ["clicked", "else"],
            },
        ),
    }
    assert sorted((e["source"], e["sourceHandle"], e["target"]) for e in graph["edges"]) == [
        ("add_tag_1", "default", "send_1"),
        ("delay_1", "default", "condition_1"),
        ("event_1", "default", "add_tag_1"),
        ("send_1", "delivered", "delay_1"),
        ("send_1", "failed", "send_2"),
        ("send_2", "delivered", "delay_1"),
    ]
    assert api_json(page, f"/api/journeys/{journey_id}/")["name"] == "直播报名跟进"

    # The old version opens read-only; pause and resume from the canvas.
    page.locator("[data-versions]").select_option("1")
    expect(page.locator("[data-viewing]")).to_contain_text("第 1 版，只读。")
    expect(page.locator("[data-palette-type]")).to_have_count(0)
    select_step(page, "send_1")
    expect(page.locator("#field-account")).to_be_disabled()
    page.get_by_role("button", name="返回草稿").click()
    page.locator("[data-pause]").click()
    expect(page.locator("[data-status]")).to_have_attribute("data-status", "paused")
    page.locator("[data-resume]").click()
    expect(page.locator("[data-status]")).to_have_attribute("data-status", "active")


def draft_nodes(page, journey_id: int) -> list[str]:
    return [n["id"] for n in api_json(page, f"/api/journeys/{journey_id}/")["draft_graph"]["nodes"]]


def test_undo_and_redo_every_kind_of_change_and_the_keyboard(wide_page, app_server):
    page = wide_page(locale="en")
    journey_id = open_new_journey(page, app_server.url)
    drop_from_palette(page, "event_trigger", 60, 80)
    select_step(page, "event_1")
    page.locator("#field-event").fill("Live Registered")

    # By keyboard: a palette step added with Enter lands after the selected step, connected to it.
    select_step(page, "event_1")
    page.locator('[data-palette-type="delay"]').focus()
    page.keyboard.press("Enter")
    expect(canvas_node(page, "delay_1")).to_be_visible()
    expect(page.locator('.react-flow__edge[data-id="event_1-default-delay_1"]')).to_have_count(1)
    # The new step's settings come next in the tab order; a connection is chosen from a list.
    expect(page.locator(".panel")).to_have_attribute("data-panel-node", "delay_1")
    page.keyboard.type("Wait two hours")
    drop_from_palette(page, "exit", 700, 80)
    select_step(page, "delay_1")
    page.locator('[data-connect="default"]').select_option("exit_1")
    expect(page.locator('.react-flow__edge[data-id="delay_1-default-exit_1"]')).to_have_count(1)
    nodes, edges = page.locator(".react-flow__node"), page.locator(".react-flow__edge")
    expect(nodes).to_have_count(3)
    saved(page)
    assert draft_nodes(page, journey_id) == ["event_1", "delay_1", "exit_1"]

    # Delete a step: its connections go with it; undo brings both back, redo takes them again.
    canvas_node(page, "delay_1").locator(".step__title").click()
    page.keyboard.press("Delete")
    expect(nodes).to_have_count(2)
    expect(edges).to_have_count(0)
    page.keyboard.press("Control+z")
    expect(nodes).to_have_count(3)
    expect(edges).to_have_count(2)
    expect(canvas_node(page, "delay_1").locator(".step__title")).to_have_text("Wait two hours")
    page.keyboard.press("Control+Shift+z")
    expect(nodes).to_have_count(2)
    page.keyboard.press("Control+z")
    expect(nodes).to_have_count(3)

    # A setting typed is one undo step, and so is a step moved by dragging.
    select_step(page, "event_1")
    page.locator("#field-event").fill("Live Watched")
    expect(canvas_node(page, "event_1").locator(".step__summary")).to_have_text("Live Watched")
    page.locator(".editor-canvas .react-flow__pane").click(position={"x": 600, "y": 500})
    page.keyboard.press("Control+z")
    expect(canvas_node(page, "event_1").locator(".step__summary")).to_have_text("Live Registered")
    before = canvas_node(page, "exit_1").bounding_box()
    placed = re.search(
        r"transform: translate\([^)]*\)", canvas_node(page, "exit_1").get_attribute("style")
    ).group(0)
    page.mouse.move(*center(canvas_node(page, "exit_1").locator(".step__title")))
    page.mouse.down()
    page.mouse.move(before["x"] + 60, before["y"] + 260, steps=8)
    page.mouse.up()
    assert canvas_node(page, "exit_1").bounding_box()["y"] > before["y"] + 200
    page.keyboard.press("Control+z")
    expect(canvas_node(page, "exit_1")).to_have_attribute("style", re.compile(re.escape(placed)))

    # Copy and paste, duplicate: fresh steps, the connection between copied steps copied too.
    canvas_node(page, "delay_1").locator(".step__title").click()
    canvas_node(page, "exit_1").locator(".step__title").click(modifiers=["Shift"])
    page.keyboard.press("Control+c")
    page.keyboard.press("Control+v")
    expect(nodes).to_have_count(5)
    expect(page.locator('.react-flow__edge[data-id="delay_2-default-exit_2"]')).to_have_count(1)
    page.keyboard.press("Control+d")
    expect(nodes).to_have_count(7)
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+z")
    expect(nodes).to_have_count(3)

    # Tidy up is undone like the rest; the shortcuts are listed in a help overlay.
    page.get_by_role("button", name="Tidy up").click()
    screenshot(page, "canvas-editor")
    page.get_by_role("button", name="Undo").click()
    page.keyboard.press("?")
    expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_contain_text("Shift + Ctrl/⌘ + Z")
    screenshot(page, "canvas-shortcuts")
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)

    # What is on the canvas is what is saved.
    saved(page)
    assert draft_nodes(page, journey_id) == ["event_1", "delay_1", "exit_1"]
    page.reload()
    expect(nodes).to_have_count(3)
    expect(canvas_node(page, "event_1").locator(".step__summary")).to_have_text("Live Registered")
    assert not page.errors


def test_two_editors_of_one_draft_lose_nothing(wide_page, app_server):
    first = wide_page()
    journey_id = open_new_journey(first, app_server.url)
    second = wide_page("admin", "demo-admin")
    second.goto(f"{app_server.url}/journeys/{journey_id}/edit/")
    expect(second.locator(".editor-canvas")).to_be_visible()

    drop_from_palette(first, "event_trigger", 60, 80)
    saved(first)
    drop_from_palette(second, "tag_added_trigger", 60, 300)
    conflict = second.locator("[data-conflict]")
    expect(conflict).to_contain_text("在您打开之后，已有其他人保存了这个旅程。您的修改仍在这里，尚未保存。")
    assert draft_nodes(second, journey_id) == ["event_1"]
    screenshot(second, "canvas-conflict")

    # Taking theirs keeps ours one undo away; undoing saves ours over theirs, knowingly.
    conflict.get_by_role("button", name="载入对方的版本").click()
    expect(canvas_node(second, "event_1")).to_be_visible()
    expect(canvas_node(second, "tag_added_1")).to_have_count(0)
    expect(second.locator("[data-notice]")).to_contain_text("按“撤销”可找回您的修改")
    second.get_by_role("button", name="撤销").click()
    expect(canvas_node(second, "tag_added_1")).to_be_visible()
    saved(second)
    assert draft_nodes(second, journey_id) == ["tag_added_1"]

    # The first editor is now the one behind: told so, and keeping theirs saves it.
    drop_from_palette(first, "delay", 400, 80)
    expect(first.locator("[data-conflict]")).to_be_visible()
    first.get_by_role("button", name="保留我的修改并覆盖对方的").click()
    saved(first)
    assert draft_nodes(first, journey_id) == ["event_1", "delay_1"]
    assert not first.errors and not second.errors


def test_the_canvas_shows_live_counts_as_customers_enter(wide_page, app_server):
    call_command("create_source", "--name", "官网", "--kind", "web", stdout=StringIO())
    source = Source.objects.get()
    trigger = node("t1", "event_trigger", event="Cart Abandoned", label="Cart abandoned")
    delay = {
        **node("d1", "delay", seconds=3600, label="Wait an hour", ends=["default"]),
        "position": {"x": 320, "y": 0},
    }
    journey = published({"nodes": [trigger, delay], "edges": [edge("t1", "d1")]}, name="Cart recovery")
    journey_worker_start(app_server)
    page = wide_page(locale="en")
    page.goto(f"{app_server.url}/journeys/{journey.pk}/")
    page.get_by_role("link", name="Edit on the canvas").click()
    page.locator("[data-versions]").select_option("live")
    expect(page.locator(".journey-editor[data-live=connected]")).to_have_count(1)
    waiting = canvas_node(page, "d1").locator('[data-count="waiting"]')
    expect(waiting).to_have_text("0 waiting: see who")

    for number in range(2):
        body = {
            "userId": f"cart-{number}",
            "event": "Cart Abandoned",
            "properties": {"cart_id": f"c-{number}"},
        }
        assert post_track(app_server.url, source, body) == 200
    # The worker may still be starting on a busy machine: a person would wait for it too.
    expect(waiting).to_have_text("2 waiting: see who", timeout=45_000)
    expect(canvas_node(page, "t1").locator('[data-count="entered"]')).to_have_text("2 entered")
    expect(page.locator(".react-flow__edge-text")).to_have_text("2")  # left the trigger by its handle
    screenshot(page, "canvas-live")

    # An analyst, who may only look, opens the canvas on the live version, with nothing to edit.
    analyst = wide_page("analyst", "demo-analyst", locale="en")
    analyst.goto(f"{app_server.url}/journeys/{journey.pk}/edit/")
    expect(analyst.locator("[data-versions]")).to_have_value("live")
    expect(canvas_node(analyst, "d1").locator('[data-count="waiting"]')).to_have_text("2 waiting: see who")
    expect(analyst.get_by_text("Read-only: you may view this journey but not change it.")).to_be_visible()
    expect(analyst.locator("[data-palette-type]")).to_have_count(0)
    expect(analyst.locator("[data-publish]")).to_have_count(0)

    waiting.click()
    expect(page.locator("#node-customers tr[data-customer]")).to_have_count(2)
    assert not page.errors and not analyst.errors


def demo_customer(name: str, phone: str, city: str) -> Customer:
    """A customer as the demo company has them: a name, a phone number, the city they live in."""
    customer = Customer.objects.create(name=name, traits={"city": city}, last_seen_at=timezone.now())
    Identity.objects.create(customer=customer, type="phone", value=phone, first_seen_at=timezone.now())
    return customer


def placed(step: dict, x: int, y: int) -> dict:
    return {**step, "position": {"x": x, "y": y}}


def live_follow_up() -> dict:
    """Sign-ups from Hangzhou get an SMS (on a sandbox that delivers every message) and a day to
    order, the goal; the others leave at once. The SMS's "failed" handle leads nowhere: publishing
    would refuse it, a test run does not."""
    sms = account_create(
        kind="sandbox_sms",
        name="SMS sandbox",
        values={"callback_secret": "sandbox-callback-secret"},
        rate_per_second=1000,
    )
    template_save(
        key="live-reminder",
        name="Live stream reminder",
        channel="sms",
        body={"template_code": "SMS_1", "params": {}, "text": "The live stream starts at 8 pm."},
        known_traits=set(),
    )
    hangzhou = {
        "id": "hangzhou",
        "label": "In Hangzhou",
        "rule": {"trait": "city", "op": "eq", "value": "杭州"},
    }
    return {
        "nodes": [
            placed(
                node("t1", "event_trigger", event="Live Registered", label="Signed up for the live"), 0, 160
            ),
            placed(node("c1", "condition", branches=[hangzhou], label="Lives in Hangzhou?"), 300, 160),
            placed(
                node(
                    "s1",
                    "send",
                    account=sms.pk,
                    template="live-reminder",
                    ends=["no_response"],
                    label="SMS reminder",
                ),
                600,
                40,
            ),
            placed(
                node(
                    "w1",
                    "wait_for_event",
                    event="Order Completed",
                    timeout_seconds=86400,
                    label="Orders in a day?",
                ),
                900,
                40,
            ),
            placed(node("g1", "goal", exit=True, label="Ordered"), 1200, -40),
            placed(node("x1", "exit", label="Did not order"), 1200, 160),
            placed(node("x2", "exit", label="Elsewhere"), 600, 320),
        ],
        "edges": [
            edge("t1", "c1"),
            edge("c1", "s1", "hangzhou"),
            edge("c1", "x2", "else"),
            edge("s1", "w1", "delivered"),
            edge("w1", "g1", "happened"),
            edge("w1", "x1", "timed_out"),
        ],
    }


def test_a_marketer_test_runs_the_draft_on_the_canvas_and_steps_through_its_path(wide_page, app_server):
    customer = demo_customer("Wang Fang", "+8613800138000", city="杭州")
    demo_customer("Wang Qiang", "+8613900139000", city="上海")
    journey = journey_save(name="Live sign-up follow-up", actor=None, draft_graph=live_follow_up())
    page = wide_page(locale="en")
    page.set_viewport_size({"width": 1440, "height": 900})  # a laptop's screen
    page.goto(f"{app_server.url}/journeys/{journey.pk}/edit/")
    # The goal that ends the journey has no handle to leave by (the palette says so).
    expect(canvas_node(page, "g1").locator(".step__out")).to_have_count(0)
    expect(canvas_node(page, "w1").locator(".step__out")).to_have_count(2)

    page.locator("[data-test-run]").click()
    panel = page.locator("[data-test-panel]")
    expect(panel).to_be_visible()
    expect(page.locator("[data-palette-type]")).to_have_count(0)  # the drawing holds still meanwhile
    # The customer, searched by name and chosen by keyboard.
    page.locator("[data-test-start]").click()
    expect(panel.locator('[data-field="customer"] .field__error')).to_have_text(
        "Choose the customer to run the journey for."
    )
    search = page.locator("#test-customer")
    search.fill("Wang")
    expect(panel.locator("[data-customer-option]")).to_have_count(2)
    search.fill("Wang F")
    expect(panel.locator("[data-customer-option]")).to_have_count(1)
    search.press("Enter")
    expect(panel.locator(f'[data-test-customer="{customer.pk}"]')).to_contain_text("Wang Fang")
    expect(page.locator("[data-test-start]")).to_be_focused()
    page.keyboard.press("Enter")

    # The path on the canvas: each visited step numbered, the edges taken drawn, the rest dimmed.
    ending = panel.locator("[data-test-ending]")
    expect(ending).to_have_attribute("data-test-ending", "completed-exit")
    expect(ending).to_contain_text("Completed at an exit")
    expect(ending).to_contain_text("At “Did not order”, +1 d after entering.")
    for node_id, visits in {"t1": "1", "c1": "2", "s1": "3", "w1": "4", "x1": "5"}.items():
        expect(canvas_node(page, node_id).locator(".step")).to_have_attribute("data-test-visits", visits)
    for node_id in ("g1", "x2"):
        expect(canvas_node(page, node_id).locator(".step.step--dimmed")).to_have_count(1)
    taken = page.locator(".react-flow__edge.edge--taken")
    expect(taken).to_have_count(4)
    expect(taken.locator(".react-flow__edge-text")).to_have_text(["1", "2", "3", "4"])
    expect(page.locator('.react-flow__edge[data-id="c1-else-x2"]')).to_have_class(re.compile("edge--dimmed"))
    expect(canvas_node(page, "x1").locator("[data-test-ended]")).to_have_text("Ended here")
    # The run's problems show as Validate shows them: the SMS's failed handle leads nowhere.
    expect(page.locator(".editor-problems")).to_have_attribute("data-problem-count", "1")
    expect(canvas_node(page, "s1").locator(".step--problem")).to_have_count(1)

    # Step by step: the condition's decision in words, the SMS in the sandbox, the simulated clock.
    steps = panel.locator("[data-test-step]")
    expect(steps).to_have_count(5)
    expect(panel.locator('[data-test-step="1"] .test-step')).to_have_attribute("aria-current", "step")
    page.locator("[data-test-next]").click()
    detail = panel.locator("[data-test-detail]")
    expect(detail.locator("[data-test-reason]")).to_have_text(
        "The rule of “In Hangzhou” holds for this customer."
    )
    expect(detail.locator("[data-test-left-by]")).to_have_text("In Hangzhou")
    expect(canvas_node(page, "c1").locator(".step--current")).to_have_count(1)
    page.keyboard.press("Enter")  # the Next button keeps the focus
    expect(detail.locator("[data-test-messages]")).to_have_text("SMS · Live stream reminder: Delivered")
    expect(detail.locator("[data-test-reason]")).to_have_text("The message was delivered.")
    page.keyboard.press("Enter")
    expect(detail.locator("[data-test-reason]")).to_have_text("The awaited event did not arrive in time.")
    expect(panel.locator('[data-test-step="4"] .test-step__time')).to_have_text("+0 min")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")  # at the end it stays there
    expect(panel.locator(".test-nav__position")).to_have_text("Step 5 of 5")
    expect(panel.locator('[data-test-step="5"] .test-step__time')).to_have_text("+1 d")
    page.locator("[data-test-previous]").click()
    expect(canvas_node(page, "w1").locator(".step--current")).to_have_count(1)
    # A visited step clicked on the canvas is shown in the list.
    canvas_node(page, "s1").locator(".step__title").click()
    expect(panel.locator('[data-test-step="3"] .test-step')).to_have_attribute("aria-current", "step")
    panel.locator('[data-test-step="2"] .test-step').click()
    page.get_by_role("button", name="Fit to view").click()
    screenshot(page, "canvas-test-run")

    # Cleared, the canvas is as before; a second run with the order placed reaches the goal.
    page.locator("[data-test-clear]").click()
    expect(page.locator(".step--visited, .step--dimmed, .edge--taken, .edge--dimmed")).to_have_count(0)
    panel.locator(".test-form__more summary").click()
    page.locator("#test-event").fill("Order Completed")
    page.locator("#test-after").fill("30")
    page.locator("[data-test-start]").click()
    expect(ending).to_have_attribute("data-test-ending", "completed-goal")
    expect(canvas_node(page, "g1").locator(".step")).to_have_attribute("data-test-visits", "5")
    panel.locator('[data-test-step="4"] .test-step').click()
    expect(detail.locator("[data-test-reason]")).to_have_text("The awaited event arrived.")
    expect(panel.locator('[data-test-step="5"] .test-step__time')).to_have_text("+30 min")

    # Closing the test run gives the drawing back; nothing of either run stayed.
    page.get_by_role("button", name="Close the test run").click()
    expect(page.locator("[data-test-panel]")).to_have_count(0)
    expect(page.locator(".step--visited, .step--dimmed")).to_have_count(0)
    expect(page.locator("[data-palette-type]").first).to_be_visible()
    assert not Enrollment.objects.exists() and not Message.objects.exists()
    assert not page.errors


def test_a_marketer_sets_who_may_enter_in_the_journey_settings(wide_page, app_server):
    graph = {"nodes": [node("t1", "event_trigger", event="Cart Abandoned")], "edges": []}
    journey = journey_save(name="购物车挽回", actor=None, draft_graph=graph)
    page = wide_page()
    page.goto(f"{app_server.url}/journeys/{journey.pk}/edit/")
    page.locator("[data-journey-settings]").click()
    dialog = page.get_by_role("dialog", name="旅程设置")
    name = dialog.get_by_label("名称", exact=True)
    expect(name).to_have_value("购物车挽回")
    dialog.get_by_label("描述").fill("加购一小时未付款：每个购物车提醒一次。")
    dialog.get_by_label("每个键一次").check()
    name.fill("")
    dialog.get_by_role("button", name="保存").click()
    # Each refusal of the API under its field; nothing is saved until all are fixed.
    expect(dialog.locator('[data-field="name"] .field__error')).to_have_text("该字段不能为空。")
    name.fill("购物车挽回（每车一次）")
    dialog.get_by_role("button", name="保存").click()
    expect(dialog.locator('[data-field="entry_key_property"] .field__error')).to_have_text(
        "请填写触发事件中作为键的属性名。"
    )
    assert api_json(page, f"/api/journeys/{journey.pk}/")["entry_policy"] == "once"
    dialog.get_by_label("触发事件中作为键的属性").fill("cart_id")
    dialog.get_by_role("button", name="保存").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.locator("[data-notice]")).to_contain_text("旅程设置已保存。")
    expect(page.locator(".editor-bar__name")).to_have_value("购物车挽回（每车一次）")
    saved_journey = api_json(page, f"/api/journeys/{journey.pk}/")
    assert {
        key: saved_journey[key] for key in ("name", "description", "entry_policy", "entry_key_property")
    } == {
        "name": "购物车挽回（每车一次）",
        "description": "加购一小时未付款：每个购物车提醒一次。",
        "entry_policy": "once_per_key",
        "entry_key_property": "cart_id",
    }

    # Again after a cooldown: how long, in days, hours or minutes; shown as set when opened again.
    page.locator("[data-journey-settings]").click()
    dialog.get_by_label("冷却期后可再次进入").check()
    dialog.get_by_role("button", name="保存").click()
    expect(dialog.locator('[data-field="cooldown_seconds"] .field__error')).to_have_text(
        "请填写客户再次进入前需要等待多久。"
    )
    dialog.locator("#settings-cooldown").fill("3")
    dialog.locator('[data-field="cooldown_seconds"] select').select_option(label="天")
    dialog.get_by_role("button", name="保存").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    saved_journey = api_json(page, f"/api/journeys/{journey.pk}/")
    assert (saved_journey["entry_policy"], saved_journey["cooldown_seconds"]) == ("after_cooldown", 3 * 86400)
    assert [n["id"] for n in saved_journey["draft_graph"]["nodes"]] == ["t1"]  # the drawing kept
    page.locator("[data-journey-settings]").click()
    expect(dialog.locator("#settings-cooldown")).to_have_value("3")
    expect(dialog.get_by_label("冷却期后可再次进入")).to_be_checked()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    assert not page.errors
