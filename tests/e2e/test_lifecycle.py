"""A marketer lays out the lifecycle path in a browser and sales open a customer from the kanban."""

from playwright.sync_api import expect

from cdp.models import Customer
from segments.tags import customers_tag, tag_save
from tests.e2e.conftest import log_in, screenshot


def test_a_marketer_adds_stages_and_a_card_opens_the_customer(new_page, app_server):
    new_customer = tag_save(key="new-customer", name="新客", actor=None)
    online = tag_save(key="online", name="线上", actor=None)
    nurtured = Customer.objects.create(name="郭靖", traits={"role": "buyer"})
    other = Customer.objects.create(name="黄蓉", traits={"role": "buyer"})
    customers_tag(customer_ids=[nurtured.pk, other.pk], tag=new_customer, actor=None)
    customers_tag(customer_ids=[nurtured.pk], tag=online, actor=None)

    marketer = new_page("en")
    log_in(marketer, app_server.url, "marketer", "demo-marketer")
    marketer.goto(f"{app_server.url}/lifecycle/")
    expect(marketer.get_by_text("No lifecycle stages yet")).to_be_visible()
    stages = (("New", "new", ["new-customer"]), ("Nurturing", "nurturing", ["new-customer", "online"]))
    for name, key, tags in stages:
        marketer.get_by_role("link", name="Add a stage at the end of the path").click()
        marketer.get_by_label("Name").fill(name)
        marketer.get_by_label("Key (used in rules)").fill(key)
        root = marketer.locator("#rule-builder > .rule-group")
        for index, tag in enumerate(tags):
            root.locator(":scope > .rule-group__add select").select_option(label="Has tag")
            root.locator(".rule-leaf[data-kind=tag]").nth(index).locator("select").select_option(value=tag)
        expect(marketer.locator("#preview-count")).to_have_text("2" if len(tags) == 1 else "1")
        marketer.get_by_role("button", name="Save stage").click()
        expect(marketer.locator(".flash")).to_contain_text(f"Stage “{name}” saved")
    columns = marketer.locator(".kanban__column")
    expect(columns).to_have_count(2)
    expect(columns.nth(0).locator(".kanban__count")).to_have_text("1")
    expect(columns.nth(1).locator(".kanban__count")).to_have_text("1")
    expect(columns.nth(1)).to_contain_text("郭靖")
    screenshot(marketer, "lifecycle-kanban")

    sales = new_page("en")
    log_in(sales, app_server.url, "sales", "demo-sales")
    sales.goto(f"{app_server.url}/lifecycle/")
    sales.locator(".kanban__card", has_text="郭靖").click()
    expect(sales.locator(".profile-head__tags")).to_contain_text("Stage: Nurturing")
    expect(sales.locator(".profile-head__tags")).to_contain_text("Score: 0")
    expect(sales.get_by_role("button", name="Add stage")).to_have_count(0)

    # A salesperson gives points by hand after a call; the ledger says who and why.
    sales.get_by_text("Adjust the score by hand").click()
    sales.get_by_label("Points").fill("20")
    sales.get_by_label("Reason").fill("Asked for a quote on the phone")
    sales.get_by_role("button", name="Adjust", exact=True).click()
    expect(sales.locator(".flash")).to_contain_text("Score adjusted by +20.")
    expect(sales.locator(".profile-head__tags")).to_contain_text("Score: 20")
    expect(sales.locator("#score tbody tr").first).to_contain_text("Asked for a quote on the phone")
    expect(sales.locator("#score tbody tr").first).to_contain_text("+20")
    sales.locator("#score").scroll_into_view_if_needed()
    screenshot(sales, "profile-score-by-hand")
