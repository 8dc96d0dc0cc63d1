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
    call_command("create_source", "--name", "官网", "--kind", "web", stdout=StringIO())
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
