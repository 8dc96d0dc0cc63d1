"""Customer roles: a person can be supplier and buyer at once; each role shows its own metrics."""

from django.urls import reverse

from cdp.models import Customer, CustomerRole
from tests.cdp.test_identity import send


def test_admins_define_roles_and_the_profile_shows_each_roles_metrics(
    client, admin_user, user_in_role, source
):
    client.force_login(admin_user)
    client.post(
        reverse("settings_customer_roles"),
        {"key": "buyer", "label": "采购商", "key_metrics": "Order Completed"},
    )
    client.post(
        reverse("settings_customer_roles"),
        {"key": "supplier", "label": "供应商", "key_metrics": "Product Listed"},
    )
    send(
        source,
        {"kind": "identify", "userId": "both-1", "traits": {"name": "孙总", "role": "supplier buyer"}},
        {"userId": "both-1", "event": "Order Completed", "properties": {"revenue": 5000}},
        {"userId": "both-1", "event": "Order Completed", "properties": {"revenue": 700}},
    )
    customer = Customer.objects.get()
    client.force_login(user_in_role("Sales"))
    html = client.get(reverse("customer", args=[customer.pk]), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "As 采购商" in html and "As 供应商" in html
    assert "¥5700.00" in html
    buyer_section = html.split("As 采购商")[1].split("</section>")[0]
    assert '<span class="stat__value">2</span>' in buyer_section
    supplier_section = html.split("As 供应商")[1].split("</section>")[0]
    assert '<span class="stat__value">0</span>' in supplier_section and "never" in supplier_section


def test_a_bad_role_key_is_refused_with_the_reason(client, admin_user):
    client.force_login(admin_user)
    html = client.post(
        reverse("settings_customer_roles"), {"key": "Big Buyer!", "label": ""}, HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()
    assert "Use lower-case letters, digits, - and _" in html and "Give the role a name people read." in html
    assert CustomerRole.objects.count() == 0
