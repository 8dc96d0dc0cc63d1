"""A marketer builds a nested rule in the segment builder, watches the live count follow each change
(and a mistake shown at the condition it is about), saves, and lands on the segment's page with its
size history drawn."""

from pathlib import Path

from playwright.sync_api import expect

from segments.models import Segment
from tests.e2e.conftest import log_in, screenshot
from tests.segments.test_rule_agreement import store


def buyer(name, phone, city, days_ago):
    return {
        "traits": {"name": name, "phone": phone, "city": city},
        "role": "buyer",
        "events": [("Order Completed", days_ago, 12, {"category": "美妆"})],
        "tags": set(),
        "segments": set(),
        "consent": None,
    }


def test_a_marketer_builds_a_nested_rule_with_a_live_count_and_saves_it(new_page, app_server, server_source):
    store(
        server_source,
        [
            buyer("赵敏", "13800138000", "深圳", 3),
            buyer("钱多多", "13900139000", "上海", 40),
            buyer("孙悟空", "13700137000", "北京", 50),
        ],
    )
    Segment.objects.filter(key="vip").delete()  # the helper's own segment

    page = new_page("en")
    log_in(page, app_server.url, "marketer", "demo-marketer")
    page.goto(f"{app_server.url}/segments/")
    expect(page.get_by_text("No segments yet")).to_be_visible()
    page.get_by_role("link", name="New segment").click()
    expect(page).to_have_url(f"{app_server.url}/segments/new/")
    page.fill("#segment-name", "深圳或上海的买家")
    page.fill("#segment-key", "sz-sh-buyers")

    count = page.locator("#preview-count")
    root = page.locator("#rule-builder > .rule-group")
    expect(page.locator("#preview-message")).to_have_text("Add a condition to see how many customers match.")

    # Did "Order Completed": everyone.
    root.locator(":scope > .rule-group__add select").select_option(label="Event")
    event = root.locator(".rule-leaf[data-kind=event]")
    # The pickers offer what occurs in the data.
    expect(page.locator("#vocabulary-events option[value='Order Completed']")).to_have_count(1)
    event.get_by_placeholder("event name").fill("Order Completed")
    expect(count).to_have_text("3")

    # And (any of: city is 深圳, city is 上海).
    root.locator(":scope > .rule-group__add").get_by_role("button", name="+ Group").click()
    nested = root.locator(".rule-group")
    nested.locator(":scope > .rule-group__head select").select_option("or")
    nested.locator(":scope > .rule-group__add select").select_option(label="Trait")
    nested.locator(".rule-leaf").nth(0).get_by_placeholder("trait").fill("city")
    nested.locator(".rule-leaf").nth(0).get_by_placeholder("value").fill("深圳")
    expect(count).to_have_text("1")
    nested.locator(":scope > .rule-group__add select").select_option(label="Trait")
    nested.locator(".rule-leaf").nth(1).get_by_placeholder("trait").fill("city")
    nested.locator(".rule-leaf").nth(1).get_by_placeholder("value").fill("上海")
    expect(count).to_have_text("2")
    expect(page.locator("#preview-sample")).to_contain_text("钱多多")

    # A mistake is shown at the condition it is about, then the count comes back.
    event.get_by_label("when").select_option(label="in the last … days")
    event.get_by_label("days").first.fill("0")
    expect(event.locator(".rule-problems")).to_contain_text("greater than or equal to 1")
    expect(page.locator("#rule-preview")).to_have_attribute("data-state", "invalid")
    event.get_by_label("days").first.fill("45")
    expect(page.locator("#rule-preview")).to_have_attribute("data-state", "counted")
    expect(count).to_have_text("2")
    expect(event.locator(".rule-problems")).to_be_empty()

    # Not in Shenzhen: the negated condition flips the count.
    nested.locator(".rule-leaf").nth(0).locator(".rule-not input").check()
    expect(nested.locator(".rule-leaf").nth(0)).to_have_class("rule-leaf is-negated")
    expect(count).to_have_text("1")  # 赵敏 in 深圳 is left out
    screenshot(page, "segment-builder")

    page.get_by_role("button", name="Save segment").click()
    segment = Segment.objects.get(key="sz-sh-buyers")
    expect(page).to_have_url(f"{app_server.url}/segments/{segment.pk}/")
    expect(page.locator(".flash--success")).to_contain_text("saved: 1 customers")
    expect(page.locator("#member-count")).to_have_text("1")
    expect(page.locator("#member-rows")).to_contain_text("钱多多")
    expect(page.locator("#size-history canvas")).to_be_visible()
    expect(page.locator("#rule-outline")).to_contain_text("did Order Completed in the last 45 days")
    assert segment.rule == {
        "and": [
            {"event": "Order Completed", "within_days": 45},
            {
                "or": [
                    {"not": {"trait": "city", "op": "eq", "value": "深圳"}},
                    {"trait": "city", "op": "eq", "value": "上海"},
                ]
            },
        ]
    }
    screenshot(page, "segment-detail")

    # The export streams from the ASGI server; a marketer sees masked phones.
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    exported = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert exported.splitlines()[0] == "customer_id,name,phone,email,entered_at"
    assert "钱多多,'+86 139****9000" in exported  # masked, kept as text for spreadsheets


def test_a_score_between_two_numbers_is_picked_in_the_builder(new_page, app_server):
    from django.utils import timezone

    from cdp.models import Customer
    from segments.models import CustomerScore

    for name, points in (("低分", 10), ("中分", 30), ("高分", 60)):
        customer = Customer.objects.create(name=name)
        CustomerScore.objects.create(customer=customer, points=points, updated_at=timezone.now())

    page = new_page("en")
    log_in(page, app_server.url, "marketer", "demo-marketer")
    page.goto(f"{app_server.url}/segments/new/")
    root = page.locator("#rule-builder > .rule-group")
    root.locator(":scope > .rule-group__add select").select_option(label="Score")
    leaf = root.locator(".rule-leaf[data-kind=score]")
    leaf.locator("select").select_option(label="between")
    leaf.get_by_label("lowest").fill("20")
    leaf.get_by_label("highest").fill("50")
    expect(page.locator("#preview-count")).to_have_text("1")

    leaf.locator("select").select_option(label="at least")  # back to one number: the lowest stays
    expect(leaf.get_by_label("lowest")).to_have_count(0)
    expect(leaf.locator("input[type=number]")).to_have_value("20")
    expect(page.locator("#preview-count")).to_have_text("2")
