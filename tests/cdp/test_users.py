"""Admins manage users on the settings pages: add, invite, change role, deactivate."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from cdp.models import AuditEntry

User = get_user_model()


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def test_admin_adds_a_user_with_a_password_who_can_then_log_in(admin_client, client_factory):
    response = admin_client.post(
        reverse("settings_user_create"),
        {
            "full_name": "刘洋",
            "username": "liuyang",
            "email": "LiuYang@Example.com",
            "role": "Marketer",
            "password": "spring-harvest-2026",
        },
    )
    user = User.objects.get(username="liuyang")
    assert response.status_code == 302
    assert response["Location"] == reverse("settings_user", args=[user.pk])
    assert user.email == "liuyang@example.com"
    assert list(user.groups.values_list("name", flat=True)) == ["Marketer"]

    newcomer = client_factory()
    login = newcomer.post(reverse("login"), {"username": "liuyang", "password": "spring-harvest-2026"})
    assert login.status_code == 302
    assert newcomer.get(reverse("journeys")).status_code == 200
    assert newcomer.get(reverse("settings_users")).status_code == 403
    assert AuditEntry.objects.filter(action="user.create", target_id=str(user.pk)).exists()


def test_a_user_added_without_password_gets_an_invitation_link(admin_client, client_factory):
    admin_client.post(
        reverse("settings_user_create"),
        {"full_name": "赵磊", "username": "zhaolei", "email": "zl@example.com", "role": "Sales"},
    )
    user = User.objects.get(username="zhaolei")
    assert not user.has_usable_password()
    page = admin_client.get(reverse("settings_user", args=[user.pk]), HTTP_ACCEPT_LANGUAGE="en")
    link = re.search(r'value="http://127.0.0.1:8000(/invitation/[^"]+)"', page.content.decode()).group(1)

    invited = client_factory()
    form_page = invited.get(link, follow=True)
    assert form_page.status_code == 200
    set_url = form_page.redirect_chain[-1][0]
    invited.post(set_url, {"new_password1": "tea-garden-4471", "new_password2": "tea-garden-4471"})
    assert (
        invited.post(reverse("login"), {"username": "zhaolei", "password": "tea-garden-4471"}).status_code
        == 302
    )

    # The link works once.
    reused = client_factory().get(link, follow=True, HTTP_ACCEPT_LANGUAGE="en")
    assert "no longer valid" in reused.content.decode()


def test_bad_input_names_the_field_and_stores_nothing(admin_client, user_in_role):
    user_in_role("Sales", username="taken")
    response = admin_client.post(
        reverse("settings_user_create"),
        {"full_name": "", "username": "taken", "email": "not-an-email", "role": "Owner", "password": "123"},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert set(form.errors) == {"full_name", "email", "role"}
    response = admin_client.post(
        reverse("settings_user_create"),
        {"full_name": "Someone", "username": "taken", "email": "s@example.com", "role": "Sales"},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert "already exists" in str(response.context["form"].errors["username"])
    response = admin_client.post(
        reverse("settings_user_create"),
        {
            "full_name": "Someone",
            "username": "new1",
            "email": "s@example.com",
            "role": "Sales",
            "password": "123",
        },
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert "password" in response.context["form"].errors
    assert not User.objects.filter(username="new1").exists()
    assert User.objects.filter(username="taken").count() == 1


def test_changing_a_role_changes_access_and_is_audited(admin_client, user_in_role, client_factory, password):
    analyst = user_in_role("Analyst", username="chen")
    response = admin_client.post(
        reverse("settings_user", args=[analyst.pk]),
        {"full_name": "陈静", "email": "chen@example.com", "role": "Marketer"},
    )
    assert response.status_code == 302
    colleague = client_factory()
    colleague.force_login(analyst)
    assert colleague.get(reverse("reports")).status_code == 200
    entry = AuditEntry.objects.get(action="user.role_change", target_id=str(analyst.pk))
    assert entry.details == {"from": "Analyst", "to": "Marketer"}


def test_deactivated_users_cannot_log_in_and_can_be_reactivated(
    admin_client, user_in_role, client_factory, password
):
    sales = user_in_role("Sales", username="wei")
    admin_client.post(reverse("settings_user_set_active", args=[sales.pk]), {"active": "0"})
    sales.refresh_from_db()
    assert not sales.is_active
    assert (
        client_factory().post(reverse("login"), {"username": "wei", "password": password}).status_code == 200
    )

    admin_client.post(reverse("settings_user_set_active", args=[sales.pk]), {"active": "1"})
    assert (
        client_factory().post(reverse("login"), {"username": "wei", "password": password}).status_code == 302
    )


def test_the_last_admin_cannot_be_demoted_or_deactivated(admin_client, admin_user, user_in_role):
    second_admin = user_in_role("Admin", username="deputy")
    admin_client.post(reverse("settings_user_set_active", args=[second_admin.pk]), {"active": "0"})
    second_admin.refresh_from_db()
    assert not second_admin.is_active  # another admin remained, so this was allowed

    response = admin_client.post(
        reverse("settings_user", args=[admin_user.pk]),
        {"full_name": "Boss", "email": "boss@example.com", "role": "Analyst"},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert "last active admin" in str(response.context["form"].errors["role"])
    admin_user.refresh_from_db()
    assert list(admin_user.groups.values_list("name", flat=True)) == ["Admin"]


def test_the_last_admin_cannot_be_deactivated_by_a_superuser(client, admin_user, user_in_role):
    operator = user_in_role(None, username="operator", is_superuser=True)
    client.force_login(operator)
    response = client.post(
        reverse("settings_user_set_active", args=[admin_user.pk]),
        {"active": "0"},
        follow=True,
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert "last active admin" in response.content.decode()
    admin_user.refresh_from_db()
    assert admin_user.is_active


def test_an_invitation_is_emailed_with_a_working_link(
    admin_client, mailoutbox, client_factory, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("settings_user_create"),
            {"full_name": "孙丽", "username": "sunli", "email": "sunli@example.com", "role": "Analyst"},
        )
    (mail,) = mailoutbox
    assert mail.to == ["sunli@example.com"]
    link = re.search(r"(http://\S+/invitation/\S+)", mail.body).group(1)
    page = client_factory().get(
        link.replace("http://127.0.0.1:8000", ""), follow=True, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert "Choose the password you will log in with" in page.content.decode()


def test_user_list_filters_by_text_role_and_status(admin_client, user_in_role):
    user_in_role("Sales", username="sales-amy", is_active=False)
    user_in_role("Marketer", username="mkt-bob")
    html = admin_client.get(reverse("settings_users"), {"role": "Sales"}).content.decode()
    assert "sales-amy" in html and "mkt-bob" not in html
    partial = admin_client.get(reverse("settings_users"), {"q": "bob"}, HTTP_HX_REQUEST="true")
    assert "<html" not in partial.content.decode()
    assert "mkt-bob" in partial.content.decode() and "sales-amy" not in partial.content.decode()
    html = admin_client.get(reverse("settings_users"), {"status": "inactive"}).content.decode()
    assert "sales-amy" in html and "mkt-bob" not in html
