"""The messaging API: accounts without secrets, sending with an idempotency key, errors by field."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from connectors.dispatcher import dispatch_account_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def api(user_in_role):
    def as_role(role):
        client = APIClient()
        client.force_authenticate(user_in_role(role))
        return client

    return as_role


def test_accounts_are_listed_without_their_secrets(api, make_account):
    account = make_account(callback_secret="top-secret-value-123")
    response = api("Admin").get(reverse("api_channel_accounts"))
    assert response.status_code == 200
    assert response.json()[0]["secrets_set"] == ["callback_secret"]
    assert "top-secret-value-123" not in response.content.decode()
    assert response.json()[0]["id"] == account.pk
    assert api("Marketer").get(reverse("api_channel_accounts")).status_code == 403


def test_a_send_is_idempotent_and_its_life_is_readable(api, make_account, make_customer):
    account, customer = make_account(), make_customer()
    client = api("Sales")
    payload = {
        "account": account.pk,
        "customer": "+8613800138000",
        "idempotency_key": "crm-42",
        "body": {"template_code": "SMS_1", "text": "{{ customer.name }}，您的报价单已更新"},
    }
    first = client.post(reverse("api_messages"), payload, format="json")
    assert first.status_code == 201, first.json()
    again = client.post(reverse("api_messages"), payload, format="json")
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    dispatch_account_run(account_id=account.pk, budget_seconds=2)
    detail = client.get(reverse("api_message", args=[first.json()["id"]])).json()
    assert detail["status"] == "sent" and detail["content"]["text"] == "王芳，您的报价单已更新"
    assert [step["step"] for step in detail["life"]] == ["queued", "attempt"]
    listed = client.get(reverse("api_messages"), {"customer": customer.pk, "status": "sent"}).json()
    assert listed["count"] == 1


def test_errors_name_the_field(api, make_account):
    account = make_account()
    client = api("Marketer")
    response = client.post(
        reverse("api_messages"),
        {
            "account": account.pk,
            "customer": "nobody@example.com",
            "idempotency_key": "x",
            "body": {"text": "a"},
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {"customer": ["No customer matches."]}
    response = client.post(
        reverse("api_messages"), {"account": 999, "customer": "1", "idempotency_key": "x"}, format="json"
    )
    assert response.json() == {"account": ["No channel account has this id."]}
    assert api("Analyst").post(reverse("api_messages"), {}, format="json").status_code == 403


def test_phone_numbers_are_masked_for_roles_without_view_pii(
    api, make_account, make_customer, client, user_in_role
):
    account, customer = make_account(), make_customer()
    payload = {
        "account": account.pk,
        "customer": str(customer.pk),
        "idempotency_key": "m",
        "body": {"text": "x"},
    }
    sent = api("Marketer").post(
        reverse("api_messages"), {**payload, "body": {"template_code": "S"}}, format="json"
    )
    assert sent.json()["recipient"] == "+86 138****8000"
    assert (
        api("Sales").get(reverse("api_message", args=[sent.json()["id"]])).json()["recipient"]
        == "+8613800138000"
    )
    assert api("Analyst").get(reverse("api_messages")).json()["results"][0]["recipient"] == "+86 138****8000"
    client.force_login(user_in_role("Analyst"))
    page = client.get(reverse("message", args=[sent.json()["id"]])).content.decode()
    assert "+86 138****8000" in page and "+8613800138000" not in page


def test_people_who_draw_journeys_list_accounts_and_templates_without_settings(api, make_account, db):
    from connectors.demo import demo_channels_load

    demo_channels_load()
    marketer = api("Marketer")
    options = marketer.get(reverse("api_channel_account_options")).json()
    assert {option["channel"] for option in options} >= {"sms", "email", "wechat_template"}
    assert set(options[0]) == {"id", "name", "channel", "status"}
    templates = marketer.get(reverse("api_message_templates"), {"channel": "sms"}).json()["results"]
    assert [template["key"] for template in templates] == ["sms-cart"]
    assert api("Analyst").get(reverse("api_channel_account_options")).status_code == 200
