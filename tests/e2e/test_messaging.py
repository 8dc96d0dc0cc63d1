"""An admin adds a sandbox SMS account in the browser, sends a test message to a customer, and
watches it go out through a real dispatch worker and come back delivered through the inbound URL."""

import re

from django.utils import timezone
from playwright.sync_api import expect

from cdp.models import Customer, Identity
from connectors.sandbox import pools_close
from tests.e2e.conftest import log_in, screenshot


def test_an_admin_adds_an_account_sends_a_test_and_sees_it_delivered(new_page, app_server):
    customer = Customer.objects.create(name="郭靖", traits={"city": "襄阳"})
    Identity.objects.create(
        customer=customer, type="phone", value="+8613812345678", first_seen_at=timezone.now()
    )
    app_server.start(
        "worker", "celery", "-A", "cdp", "worker", "--pool", "solo", "-Q", "dispatch,default,sandbox"
    )
    app_server.start("beat", "celery", "-A", "cdp", "beat", "--loglevel", "INFO")

    admin = new_page("en")
    log_in(admin, app_server.url, "admin", "demo-admin")
    admin.goto(f"{app_server.url}/channels/")
    expect(admin.locator("#accounts")).to_contain_text("阿里云短信（沙箱）")  # the demo's sandbox accounts
    screenshot(admin, "channels")
    admin.get_by_text("Add an account").click()
    admin.get_by_role("link", name="SMS sandbox (Aliyun format)").click()
    admin.get_by_label("Name", exact=True).fill("门店短信")
    admin.get_by_label("Receipt delay seconds").fill("0")
    admin.get_by_label("Failure rate").fill("1.5")
    admin.get_by_role("button", name="Add the account").click()
    expect(admin.locator(".field.has-error")).to_contain_text("less than or equal to 1")
    admin.get_by_label("Failure rate").fill("0")
    admin.get_by_label("Callback secret").fill("store-sms-callback-secret")
    admin.get_by_role("button", name="Add the account").click()
    expect(admin.locator(".flash")).to_contain_text("Account “门店短信” added.")
    expect(admin.locator("body")).not_to_contain_text("store-sms-callback-secret")

    admin.get_by_label("Customer").fill("+8613812345678")
    admin.get_by_label("Text").fill("{{ customer.name }}，{{ traits.city }}门店新品到了")
    admin.get_by_role("button", name="Send the test").click()
    expect(admin).to_have_url(re.compile(r"/messages/\d+/$"))
    # The page follows the message by itself: the worker sends, beat posts the sandbox's receipt back.
    expect(admin.locator('[data-status="delivered"]').first).to_be_visible(timeout=40_000)
    expect(admin.locator("#message-life [data-step=receipt]")).to_contain_text("Receipt")
    expect(admin.locator("body")).to_contain_text("郭靖，襄阳门店新品到了")
    screenshot(admin, "message-life")

    admin.goto(f"{app_server.url}/messages/?status=delivered")
    expect(admin.locator("#message-rows tr[data-message]")).to_have_count(1)
    admin.goto(f"{app_server.url}/channels/sandbox/")
    expect(admin.locator("#sandbox-outbox")).to_contain_text("+8613812345678")
    pools_close()
