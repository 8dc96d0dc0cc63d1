"""A message waiting on a paused account says why on its page; the admin follows the page's link to the
account, resumes it, and the message page, following by itself, shows it sent and the reason gone."""

from django.utils import timezone
from playwright.sync_api import expect

from cdp.models import Customer, Identity
from connectors.accounts import account_pause
from connectors.models import ChannelAccount
from connectors.sandbox import pools_close
from connectors.services import message_enqueue
from tests.e2e.conftest import log_in, screenshot


def test_a_waiting_message_says_why_until_the_admin_resumes_its_account(new_page, app_server):
    customer = Customer.objects.create(name="黄蓉", traits={"city": "桃花岛"})
    Identity.objects.create(
        customer=customer, type="phone", value="+8613812340000", first_seen_at=timezone.now()
    )
    account = ChannelAccount.objects.get(name="阿里云短信（沙箱）")
    account_pause(account_id=account.pk, reason="isv.AMOUNT_NOT_ENOUGH: the account balance is not enough")
    message, _created = message_enqueue(
        account=account,
        customer=customer,
        idempotency_key="e2e-why-paused",
        body={"template_code": "SMS_1", "params": {"text": "新品到了"}, "text": "新品到了"},
        origin="staff",
    )
    app_server.start(
        "worker", "celery", "-A", "cdp", "worker", "--pool", "solo", "-Q", "dispatch,default,sandbox"
    )
    app_server.start("beat", "celery", "-A", "cdp", "beat", "--loglevel", "INFO")  # the dispatch sweep

    analyst = new_page()  # in Chinese, a role that reads messages but manages no account
    log_in(analyst, app_server.url, "analyst", "demo-analyst")
    analyst.goto(f"{app_server.url}/messages/")
    row = analyst.locator(f'#message-rows tr[data-message="{message.pk}"]')
    expect(row.locator('[data-wait="paused"]')).to_contain_text("账号“阿里云短信（沙箱）”自")
    expect(row).to_contain_text("管理员恢复该账号后即会发送")

    admin = new_page("en")
    log_in(admin, app_server.url, "admin", "demo-admin")
    admin.goto(f"{app_server.url}/messages/{message.pk}/")
    why = admin.locator("#message-wait")
    expect(why).to_contain_text("Why it has not gone yet")
    expect(why).to_contain_text("The account “阿里云短信（沙箱）” has been paused since ")
    expect(why).to_contain_text("isv.AMOUNT_NOT_ENOUGH: the account balance is not enough.")
    screenshot(admin, "message-why-paused")

    # The admin opens the account from the message's page and resumes it, then comes back.
    message_page = admin.url
    why.get_by_role("link", name="Open the account to resume it").click()
    admin.get_by_role("button", name="Resume").click()
    expect(admin.locator(".flash")).to_contain_text("Resumed")
    admin.goto(message_page)
    # The page follows the message: a dispatch worker sends it, and the reason is gone.
    expect(admin.locator('[data-status="sent"], [data-status="delivered"]').first).to_be_visible(
        timeout=40_000
    )
    expect(admin.locator("#message-wait")).to_have_count(0)
    pools_close()
