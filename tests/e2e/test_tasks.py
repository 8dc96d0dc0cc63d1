"""A journey hands a live-stream sign-up to its owner: the salesperson finds the task under My tasks
with the customer card and the due time, closes it as not reached, and the journey follows."""

from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import expect

from cdp.models import Customer, Identity
from journeys.matching import events_match
from journeys.models import Enrollment, StaffTask
from segments.tags import customers_tag, tag_save
from tests.e2e.conftest import log_in, screenshot
from tests.journeys.conftest import edge, node, published, track


def test_the_owner_closes_a_journeys_task_as_not_reached(new_page, app_server):
    sales_user = get_user_model().objects.get(username="sales")
    customer = Customer.objects.create(name="郭靖", owner=sales_user, traits={"city": "杭州"})
    Identity.objects.create(
        customer=customer, type="phone", value="+8613800138000", first_seen_at=customer.created_at
    )
    customers_tag(
        customer_ids=[customer.pk], tag=tag_save(key="live-vip", name="直播VIP", actor=None), actor=None
    )
    tag_save(key="called", name="已回访", actor=None)
    published(
        {
            "nodes": [
                node("t1", "form_submitted_trigger", form="live-signup"),
                node(
                    "k1",
                    "create_task",
                    title="回访直播报名客户",
                    note="问问是否需要样品",
                    due_in_seconds=4 * 3600,
                    ends=["done", "timed_out"],
                ),
                node("a1", "add_tag", tag="called", ends=["default"]),
            ],
            "edges": [edge("t1", "k1"), edge("k1", "a1", "not_reached")],
        },
        name="直播报名回访",
    )
    track(customer, "Form Submitted", {"form_id": "live-signup"})
    events_match(customer_ids=[customer.pk])
    task = StaffTask.objects.get()

    page = new_page("en")
    log_in(page, app_server.url, "sales", "demo-sales")
    page.get_by_role("navigation", name="Main navigation").get_by_role("link", name="My tasks").click()
    card = page.locator(f".task[data-task='{task.pk}']")
    expect(card).to_contain_text("回访直播报名客户")
    expect(card).to_contain_text("问问是否需要样品")
    expect(card.locator(".task__customer")).to_contain_text("郭靖")
    expect(card.locator(".task__customer")).to_contain_text("直播VIP")
    expect(card.locator(".task__customer")).to_contain_text("138")  # the phone, as sales may see it
    expect(card.locator("time")).to_have_text(timezone.localtime(task.due_at).strftime("%Y-%m-%d %H:%M"))
    screenshot(page, "my-tasks")

    card.get_by_label("What happened (optional)").fill("电话无人接听")
    card.get_by_role("button", name="Not reached").click()
    expect(page.locator(".flash")).to_contain_text("Task “回访直播报名客户” closed.")
    expect(page.get_by_text("No open tasks")).to_be_visible()
    expect(page.locator("#closed-tasks")).to_contain_text("电话无人接听")
    expect(page.locator("#closed-tasks")).to_contain_text("Not reached")

    events_match(customer_ids=[customer.pk])
    enrollment = Enrollment.objects.get()
    assert enrollment.steps.get(node_id="k1").outcome == "not_reached"
    assert enrollment.status == "completed"
