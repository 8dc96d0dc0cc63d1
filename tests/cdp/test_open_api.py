"""The open API: tokens act with their user's role; search, profiles, upserts and events."""

import datetime as dt
import re

import pytest
import time_machine
from django.urls import reverse

from cdp.models import ApiToken, AuditEntry, Customer
from cdp.services import api_token_rotate
from tests.cdp.test_identity import send


@pytest.fixture
def api(client):
    def as_role(user):
        token = api_token_rotate(user=user)
        client.defaults["HTTP_AUTHORIZATION"] = f"Token {token.key}"
        return client

    return as_role


def test_a_back_office_system_creates_then_updates_a_customer(api, user_in_role):
    client = api(user_in_role("Marketer"))
    body = {"identities": {"phone": "13700001111", "user_id": "erp-7"}, "traits": {"company": "海康渠道商"}}
    created = client.post("/api/customers/", body, content_type="application/json")
    assert created.status_code == 201
    assert created.json()["traits"]["company"] == "海康渠道商"
    assert created.json()["phone"] == "+86 137****1111"  # marketers do not see full phones

    again = client.post(
        "/api/customers/",
        {"identities": {"phone": "137 0000 1111"}, "traits": {"city": "杭州"}},
        content_type="application/json",
    )
    assert again.status_code == 200
    assert again.json()["id"] == created.json()["id"]
    assert again.json()["traits"] == {"company": "海康渠道商", "city": "杭州"}
    assert Customer.objects.filter(merged_into=None).count() == 1


def test_upsert_errors_name_the_field(api, user_in_role):
    client = api(user_in_role("Marketer"))
    response = client.post("/api/customers/", {"identities": {"fax": "1"}}, content_type="application/json")
    assert response.status_code == 400
    assert "Unknown identity types: fax" in response.json()["identities"][0]
    response = client.post(
        "/api/customers/", {"identities": {"phone": "null"}}, content_type="application/json"
    )
    assert response.status_code == 400
    assert "None of these identifiers is usable" in response.json()["identities"][0]
    assert Customer.objects.count() == 0


def test_tokens_are_limited_by_the_role(api, user_in_role, server_source):
    send(server_source, {"userId": "u-1", "event": "Viewed", "context": {"traits": {"phone": "13800138000"}}})
    client = api(user_in_role("Analyst"))
    assert client.get("/api/customers/", {"q": "13800138000"}).json()["count"] == 1
    response = client.post(
        "/api/customers/", {"identities": {"user_id": "x"}}, content_type="application/json"
    )
    assert response.status_code == 403
    client.defaults["HTTP_AUTHORIZATION"] = "Token not-a-token"
    assert client.get("/api/customers/").status_code == 401


def test_profile_and_events_by_cursor(api, user_in_role, server_source):
    send(
        server_source,
        *[
            {"userId": "u-2", "event": f"E{index}", "timestamp": f"2026-11-2{index}T10:00:00Z"}
            for index in range(3)
        ],
    )
    customer = Customer.objects.get()
    client = api(user_in_role("Sales"))
    profile = client.get(reverse("api_customer", args=[customer.pk])).json()
    assert {"type": "user_id", "value": "u-2"}.items() <= profile["identities"][0].items()
    assert {stat["name"] for stat in profile["stats"]} == {"E0", "E1", "E2"}
    client.defaults["QUERY_STRING"] = ""
    first = client.get(reverse("api_customer_events", args=[customer.pk]), {"page_size": 2}).json()
    assert [event["name"] for event in first["results"]][:1] == ["E2"]
    assert client.get(reverse("api_customer", args=[999999])).status_code == 404


def test_a_token_is_shown_once_kept_as_a_hash_and_revoked_from_the_account_page(client, user_in_role):
    user = user_in_role("Sales")
    client.force_login(user)
    made = client.post(reverse("account"), {"action": "rotate", "expires_in_days": "30"})
    key = re.search(r'value="([0-9a-f]{40})" id="issued-key"', made.content.decode()).group(1)
    assert made["Cache-Control"].startswith("max-age=0")  # never cached, with the key on it
    stored = ApiToken.objects.get(user=user)
    assert key not in (stored.key_hash, stored.prefix) and stored.prefix == key[:8]
    page = client.get(reverse("account")).content.decode()
    assert key not in page  # shown once
    assert f"{key[:8]}…" in page

    client.logout()
    assert client.get("/api/me/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200
    client.force_login(user)
    client.post(reverse("account"), {"action": "revoke"})
    client.logout()
    assert client.get("/api/me/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 401


def test_a_token_expires_and_records_its_last_use(client, user_in_role):
    user = user_in_role("Marketer")
    with time_machine.travel(dt.datetime(2027, 1, 1, 9, 0, tzinfo=dt.UTC), tick=False):
        issued = api_token_rotate(user=user, expires_in_days=30)
    headers = {"HTTP_AUTHORIZATION": f"Token {issued.key}"}
    with time_machine.travel(dt.datetime(2027, 1, 30, 9, 0, tzinfo=dt.UTC), tick=False):
        assert client.get("/api/me/", **headers).status_code == 200
    assert ApiToken.objects.get(user=user).last_used_at == dt.datetime(2027, 1, 30, 9, 0, tzinfo=dt.UTC)
    with time_machine.travel(dt.datetime(2027, 1, 31, 9, 0, 1, tzinfo=dt.UTC), tick=False):
        response = client.get("/api/me/", HTTP_ACCEPT_LANGUAGE="en", **headers)
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_an_admin_revokes_every_token_at_once(client, user_in_role):
    keys = [api_token_rotate(user=user_in_role(role)).key for role in ("Sales", "Marketer")]
    admin = user_in_role("Admin")
    client.force_login(admin)
    response = client.post(reverse("settings_api_tokens_revoke"), follow=True, HTTP_ACCEPT_LANGUAGE="en")
    assert "2 API tokens were revoked; their owners make new ones." in response.content.decode()
    client.logout()
    for key in keys:
        assert client.get("/api/me/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 401
    assert AuditEntry.objects.filter(action="user.api_tokens_revoke_all", actor=admin).exists()


def test_the_schema_describes_the_customer_api(client, user_in_role):
    client.force_login(user_in_role("Analyst"))
    schema = client.get("/api/schema/").content.decode()
    for path in ("/api/customers/", "/api/customers/{customer_id}/", "/api/customers/{customer_id}/events/"):
        assert path in schema
