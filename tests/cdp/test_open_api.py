"""The open API: tokens act with their user's role; search, profiles, upserts and events."""

import pytest
from django.urls import reverse

from cdp.models import Customer
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


def test_tokens_are_limited_by_the_role(api, user_in_role, source):
    send(source, {"userId": "u-1", "event": "Viewed", "context": {"traits": {"phone": "13800138000"}}})
    client = api(user_in_role("Analyst"))
    assert client.get("/api/customers/", {"q": "13800138000"}).json()["count"] == 1
    response = client.post(
        "/api/customers/", {"identities": {"user_id": "x"}}, content_type="application/json"
    )
    assert response.status_code == 403
    client.defaults["HTTP_AUTHORIZATION"] = "Token not-a-token"
    assert client.get("/api/customers/").status_code == 401


def test_profile_and_events_by_cursor(api, user_in_role, source):
    send(
        source,
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


def test_users_create_and_revoke_their_token_on_their_account_page(client, user_in_role):
    user = user_in_role("Sales")
    client.force_login(user)
    client.post(reverse("account"), {"action": "rotate"})
    page = client.get(reverse("account")).content.decode()
    key = user.auth_token.key
    assert key in page
    client.post(reverse("account"), {"action": "revoke"})
    client.logout()
    assert client.get("/api/me/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 401


def test_the_schema_describes_the_customer_api(client, user_in_role):
    client.force_login(user_in_role("Analyst"))
    schema = client.get("/api/schema/").content.decode()
    for path in ("/api/customers/", "/api/customers/{customer_id}/", "/api/customers/{customer_id}/events/"):
        assert path in schema
