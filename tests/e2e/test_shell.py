"""What people see first: logging in, the navigation of their role, the language switch, the journeys
page with its canvas island, and live notifications."""

import subprocess
import sys

from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from tests.e2e.conftest import log_in, screenshot
from tests.processes import ROOT

User = get_user_model()


def test_marketer_logs_in_in_chinese_and_switches_to_english(new_page, app_server):
    page = new_page("zh-CN")
    page.goto(f"{app_server.url}/journeys/")
    expect(page).to_have_url(f"{app_server.url}/login/?next=/journeys/")
    expect(page.locator("h1")).to_have_text("登录")
    screenshot(page, "login")

    page.fill("input[name=username]", "marketer")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    expect(page.locator(".flash--error")).to_be_visible()

    log_in(page, app_server.url, "marketer", "demo-marketer")
    nav = page.locator("nav.nav")
    expect(nav.get_by_role("link", name="旅程")).to_be_visible()
    expect(nav.get_by_role("link", name="设置")).to_have_count(0)

    page.select_option("#language", "en")
    expect(nav.get_by_role("link", name="Journeys")).to_be_visible()
    nav.get_by_role("link", name="Journeys").click()
    expect(page.locator(".empty-state__title")).to_have_text("No journeys yet")
    # The canvas island draws the gallery's live-stream sign-up journey: seven nodes, the failed
    # WeChat template falling back to SMS.
    expect(page.locator(".react-flow__node")).to_have_count(7)
    expect(page.locator(".react-flow__node", has_text="SMS fallback")).to_be_visible()
    screenshot(page, "journeys")


def test_admin_invites_a_colleague_who_sets_a_password_and_logs_in(new_page, app_server):
    admin = new_page("en")
    log_in(admin, app_server.url, "admin", "demo-admin")
    admin.locator("nav.nav").get_by_role("link", name="Settings").click()
    expect(admin.locator("#user-rows tr")).to_have_count(4)
    admin.wait_for_load_state()  # htmx binds the live filter once the page has loaded
    admin.fill("input[name=q]", "sales")
    expect(admin.locator("#user-rows tr")).to_have_count(1)
    admin.fill("input[name=q]", "")
    expect(admin.locator("#user-rows tr")).to_have_count(4)
    screenshot(admin, "settings-users")

    admin.get_by_role("link", name="Add user").click()
    admin.fill("input[name=full_name]", "周婷")
    admin.fill("input[name=username]", "zhouting")
    admin.fill("input[name=email]", "zhouting@example.com")
    admin.select_option("select[name=role]", "Sales")
    admin.get_by_role("button", name="Add user").click()
    expect(admin.locator(".flash--success")).to_contain_text("周婷 was added.")
    invitation = admin.locator(".copy-field").input_value()

    colleague = new_page("en")
    colleague.goto(invitation)
    expect(colleague.locator("h1")).to_have_text("Choose your password")
    colleague.fill("input[name=new_password1]", "west-lake-longjing-7")
    colleague.fill("input[name=new_password2]", "west-lake-longjing-7")
    colleague.click("button[type=submit]")
    expect(colleague.locator(".flash--success")).to_contain_text("Your password is set")
    log_in(colleague, app_server.url, "zhouting", "west-lake-longjing-7")
    nav = colleague.locator("nav.nav")
    expect(nav.get_by_role("link", name="Customers")).to_be_visible()
    expect(nav.get_by_role("link", name="Settings")).to_have_count(0)


def test_an_open_page_shows_notifications_from_the_server_and_from_other_processes(new_page, app_server):
    sales = new_page("en")
    log_in(sales, app_server.url, "sales", "demo-sales")
    expect(sales.locator("#notifications[data-connected=true]")).to_have_count(1)
    admin = new_page()  # the admin reads Chinese; the sales page still reads its own language
    log_in(admin, app_server.url, "admin", "demo-admin")
    sales_user = User.objects.get(username="sales")

    admin.goto(f"{app_server.url}/settings/users/{sales_user.pk}/")
    admin.select_option("select[name=role]", "Marketer")
    admin.get_by_role("button", name="保存修改").click()
    expect(admin.locator(".flash--success")).to_be_visible()
    expect(sales.locator(".toast")).to_contain_text("Your role is now Marketer.")

    # A separate process (as a Celery worker would) publishes through the same channel layer.
    subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import django; django.setup();"
                "from cdp.realtime import notify_user;"
                f"notify_user(user_id={sales_user.pk}, kind='task', message='New task: call back 王先生')"
            ),
        ],
        cwd=ROOT,
        env=app_server.env,
        check=True,
        timeout=60,
    )
    expect(sales.locator(".toast", has_text="New task: call back 王先生")).to_be_visible()
