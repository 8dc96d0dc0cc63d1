"""Sales staff find a customer and watch their timeline update live as events arrive."""

import base64
import json
import urllib.request
from io import StringIO

from django.core.management import call_command
from playwright.sync_api import expect

from cdp.models import Customer, Source
from tests.e2e.conftest import log_in, screenshot
from tests.processes import wait_until


def post_track(base_url: str, source: Source, body: dict) -> int:
    request = urllib.request.Request(  # noqa: S310 (our own local http URL)
        f"{base_url}/v1/track",
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(f"{source.write_key}:".encode()).decode(),
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (our own local http URL)
        return response.status


def test_sales_searches_a_customer_and_sees_new_events_arrive_live(new_page, app_server):
    call_command("create_source", "--name", "订单系统", "--kind", "server", stdout=StringIO())
    source = Source.objects.get()
    app_server.start("worker", "celery", "-A", "cdp", "worker", "--pool", "solo", "-Q", "ingest")
    assert (
        post_track(
            app_server.url,
            source,
            {
                "userId": "buyer-9",
                "event": "Product Viewed",
                "properties": {"sku": "LOCK-9"},
                "context": {"traits": {"phone": "13912345678", "name": "赵敏"}},
            },
        )
        == 200
    )
    wait_until(
        lambda: Customer.objects.filter(identities__value="buyer-9").exists(), timeout=30, what="ingest"
    )
    customer = Customer.objects.get(identities__value="buyer-9")

    sales = new_page("zh-CN")
    log_in(sales, app_server.url, "sales", "demo-sales")
    sales.goto(f"{app_server.url}/customers/")
    sales.fill("input[name=q]", "139 1234 5678")
    sales.locator("#customer-rows a").first.click()
    expect(sales).to_have_url(f"{app_server.url}/customers/{customer.pk}/")
    expect(sales.locator("#timeline .event")).to_have_count(1)
    expect(sales.locator("#timeline[data-live=connected]")).to_have_count(1)

    assert (
        post_track(
            app_server.url,
            source,
            {
                "userId": "buyer-9",
                "event": "Order Completed",
                "properties": {"revenue": 1999, "order_id": "SO-77"},
            },
        )
        == 200
    )
    expect(sales.locator("#timeline .event").first).to_contain_text("Order Completed", timeout=10_000)
    expect(sales.locator("#timeline .event")).to_have_count(2)
    screenshot(sales, "customer-profile")


def test_admin_imports_a_csv_and_watches_it_finish(new_page, app_server, tmp_path):
    app_server.start("worker", "celery", "-A", "cdp", "worker", "--pool", "solo", "-Q", "ingest")
    rows = "\n".join(f"1390000{index:04d},客户{index},杭州" for index in range(1200))
    csv_file = tmp_path / "customers.csv"
    csv_file.write_text("phone,name,city\n" + rows + "\nnot-a-phone,坏数据,\n", encoding="utf-8")

    admin = new_page("en")
    log_in(admin, app_server.url, "admin", "demo-admin")
    admin.goto(f"{app_server.url}/customers/import/")
    admin.set_input_files("input[name=file]", str(csv_file))
    admin.get_by_role("button", name="Start import").click()
    expect(admin.locator(".flash--success")).to_contain_text("1201 rows")
    job = admin.locator("#import-jobs tr[data-job]").first
    expect(job).to_have_attribute("data-status", "done", timeout=60_000)  # the page polls while it runs
    expect(job).to_contain_text("1201 / 1201")
    expect(job.get_by_role("link", name="download the report")).to_be_visible()
    assert Customer.objects.filter(merged_into=None).count() == 1200


def test_sales_tag_a_customer_and_the_tag_lands_on_the_timeline(new_page, app_server):
    from segments.tags import tag_group_save, tag_save

    customer = Customer.objects.create(name="周芷若", traits={"role": "buyer"})
    group = tag_group_save(name="意向", color="#dc2626", actor=None)
    tag_save(key="hot-lead", name="高意向", group=group, actor=None)

    sales = new_page("en")
    log_in(sales, app_server.url, "sales", "demo-sales")
    sales.goto(f"{app_server.url}/customers/{customer.pk}/")
    expect(sales.locator(".profile-head__tags")).to_contain_text("No tags yet")
    sales.select_option(".tag-add select", label="高意向")
    sales.get_by_role("button", name="Add tag").click()
    expect(sales.locator(".profile-head__tags .badge--tag")).to_have_text("高意向×")
    expect(sales.locator("#timeline .event").first).to_contain_text("tag_added")
    screenshot(sales, "customer-tags")

    sales.get_by_role("button", name="Remove the tag 高意向").click()
    expect(sales.locator(".profile-head__tags")).to_contain_text("No tags yet")
    expect(sales.locator("#timeline .event").first).to_contain_text("tag_removed")
