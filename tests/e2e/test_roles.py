"""An admin makes a role on the roles page and edits it in the matrix, as people click it."""

from django.contrib.auth.models import Group
from playwright.sync_api import expect

from tests.e2e.conftest import log_in, screenshot

ROLE = "Sales (own customers)"


def test_admin_makes_a_role_from_sales_edits_it_in_the_matrix_and_deletes_it(new_page, app_server):
    page = new_page("en")
    log_in(page, app_server.url, "admin", "demo-admin")
    page.goto(f"{app_server.url}/settings/roles/")
    admin_manages_users = page.get_by_role("checkbox", name="Admin: Manage users, roles and settings")
    expect(admin_manages_users).to_be_disabled()
    expect(admin_manages_users).to_be_checked()

    page.fill("#id_name", ROLE)
    page.select_option("select[name=template]", "Sales")
    page.select_option("select[name=scope]", "own")
    page.get_by_role("button", name="Create role").click()
    expect(page.locator(".flash")).to_contain_text(f"Role “{ROLE}” created.")
    expect(page.locator(".breadcrumb")).to_contain_text(ROLE)

    page.locator(".breadcrumb").get_by_role("link", name="Roles").click()
    full_contacts = page.get_by_role("checkbox", name=f"{ROLE}: See full phone numbers and ID numbers")
    expect(full_contacts).to_be_checked()  # copied from Sales
    full_contacts.uncheck()
    page.get_by_role("combobox", name=f"{ROLE}: Customers it sees").select_option("team")
    screenshot(page, "settings-roles")
    page.get_by_role("button", name="Save roles").click()
    expect(page.locator(".flash")).to_contain_text("Roles saved.")
    expect(
        page.get_by_role("checkbox", name=f"{ROLE}: See full phone numbers and ID numbers")
    ).not_to_be_checked()
    expect(page.get_by_role("combobox", name=f"{ROLE}: Customers it sees")).to_have_value("team")
    role = Group.objects.get(name=ROLE)
    assert not role.permissions.filter(codename="view_pii").exists()
    assert role.staff_role.scope == "team"

    page.locator(".card-grid").get_by_role("link", name=ROLE).click()
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete role").click()
    expect(page.locator(".flash")).to_contain_text(f"Role “{ROLE}” deleted")
    assert not Group.objects.filter(name=ROLE).exists()
