"""Each role reaches what it should, gets 403 elsewhere; anonymous visitors go to the login page."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from cdp.access import api_checks_capability, declared_capability, is_public
from tests.conftest import ROLES

# What each role may open: the product's access policy as people were told it.
PAGES = {
    "customers": {"Admin", "Marketer", "Sales", "Analyst"},
    "segments": {"Admin", "Marketer", "Sales", "Analyst"},
    "tags": {"Admin", "Marketer", "Sales", "Analyst"},
    "journeys": {"Admin", "Marketer", "Sales", "Analyst"},
    "messages": {"Admin", "Marketer", "Sales", "Analyst"},
    "reports": {"Admin", "Marketer", "Analyst"},
    "channels": {"Admin"},
    "settings_users": {"Admin"},
    "settings_user_create": {"Admin"},
    "settings_roles": {"Admin"},
    "settings_audit": {"Admin"},
    "settings_sources": {"Admin"},
    "settings_customer_roles": {"Admin"},
    "settings_identity_rules": {"Admin"},
    "imports": {"Admin"},
    "merge_reviews": {"Admin", "Marketer", "Sales"},
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("page", sorted(PAGES))
def test_each_role_reaches_its_pages_and_is_refused_elsewhere(client, user_in_role, role, page):
    client.force_login(user_in_role(role))
    response = client.get(reverse(page), HTTP_ACCEPT_LANGUAGE="en")
    if role in PAGES[page]:
        assert response.status_code == 200
    else:
        assert response.status_code == 403
        assert "You do not have access to this page" in response.content.decode()


@pytest.mark.parametrize("role", ROLES)
def test_navigation_shows_only_the_sections_the_role_may_open(client, user_in_role, role):
    client.force_login(user_in_role(role))
    html = client.get(reverse("home"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    sections = {"settings": "settings_users"}
    for page in ("customers", "segments", "tags", "journeys", "messages", "reports", "channels", "settings"):
        allowed = role in PAGES[sections.get(page, page)]
        assert (f'href="{reverse(page)}"' in html) is allowed, page


def test_a_user_without_a_role_sees_the_start_page_and_nothing_else(client, user_in_role):
    client.force_login(user_in_role(None))
    assert client.get(reverse("home")).status_code == 200
    for page in PAGES:
        assert client.get(reverse(page)).status_code == 403, page


@pytest.mark.parametrize("page", ["home", *sorted(PAGES)])
def test_anonymous_visitors_are_sent_to_the_login_page(client, db, page):
    response = client.get(reverse(page))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={reverse(page)}"


def test_the_login_page_and_health_check_are_public(client, db):
    assert client.get(reverse("login")).status_code == 200
    assert client.get(reverse("healthz")).status_code in (200, 503)


def test_api_refuses_anonymous_callers_and_answers_with_the_role(client, user_in_role):
    assert client.get("/api/me/").status_code == 401
    client.force_login(user_in_role("Sales", username="zhang"))
    body = client.get("/api/me/").json()
    assert body["username"] == "zhang"
    assert body["role"] == "Sales"
    assert "view_pii" in body["capabilities"]
    assert "manage_journeys" not in body["capabilities"]


def test_deactivated_users_lose_access_at_once(client, user_in_role):
    user = user_in_role("Marketer")
    client.force_login(user)
    user.is_active = False
    user.save()
    response = client.get(reverse("customers"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def _all_patterns(resolver, prefix=""):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            yield from _all_patterns(pattern, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def test_every_page_and_api_view_declares_who_may_open_it():
    undeclared = [
        route
        for route, view in _all_patterns(get_resolver())
        if (
            not (declared_capability(view) and api_checks_capability(view.cls))
            if getattr(view, "cls", None)
            else not (is_public(view) or declared_capability(view))
        )
    ]
    assert undeclared == []


@pytest.mark.parametrize("role", [role for role in ROLES if role != "Admin"])
def test_only_admins_can_change_users(client, user_in_role, role):
    target = user_in_role("Sales", username="target")
    client.force_login(user_in_role(role))
    assert client.get(reverse("settings_user", args=[target.pk])).status_code == 403
    changed = {"full_name": "X", "email": "x@example.com", "role": "Admin"}
    assert client.post(reverse("settings_user", args=[target.pk]), changed).status_code == 403
    assert (
        client.post(reverse("settings_user_set_active", args=[target.pk]), {"active": "0"}).status_code == 403
    )
    target.refresh_from_db()
    assert target.is_active
    assert list(target.groups.values_list("name", flat=True)) == ["Sales"]


def test_the_api_schema_is_for_signed_in_users(client, user_in_role):
    assert client.get("/api/schema/").status_code == 401
    client.force_login(user_in_role("Analyst"))
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/me/" in response.content


def test_a_view_that_declares_nothing_is_refused(client, admin_user, settings):
    settings.ROOT_URLCONF = "tests.cdp.undeclared_urls"
    client.force_login(admin_user)
    for url in ("/undeclared/", "/api/unchecked/"):
        response = client.get(url)
        assert response.status_code == 403, url
        assert b"secret" not in response.content
