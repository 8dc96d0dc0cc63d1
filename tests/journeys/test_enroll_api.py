"""Another system enrolls customers through ``POST /api/journeys/<id>/enroll/``: by id or by
identifiers (a new lead is created), with context the journey's templates read; the entry policy
holds, and every refusal names the field."""

from __future__ import annotations

import pytest

from cdp.identity import IDENTITY_TYPES
from cdp.models import Identity
from connectors.models import Message
from journeys.models import Enrollment
from tests.journeys.conftest import edge, node, published

pytestmark = pytest.mark.django_db(transaction=True)
UNKNOWN_FAX = "Unknown identity types: fax; use " + ", ".join(IDENTITY_TYPES) + "."


@pytest.fixture
def marketer(client, user_in_role):
    client.force_login(user_in_role("Marketer"))
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def enroll(client, journey, **body):
    return client.post(f"/api/journeys/{journey.pk}/enroll/", body, content_type="application/json")


@pytest.fixture
def crm_journey(make_account, sms_template, tags):
    sms = make_account()
    return published(
        {
            "nodes": [
                node("t1", "api_trigger", required_context=["order_id"]),
                node("a1", "add_tag", tag="lead"),
                node(
                    "s1",
                    "send",
                    account=sms.pk,
                    template="cart-sms",
                    ends=["delivered", "failed", "no_response"],
                ),
            ],
            "edges": [edge("t1", "a1"), edge("a1", "s1")],
        },
        name="CRM 线索",
    )


def test_a_customer_is_enrolled_by_id_once_with_the_context(marketer, crm_journey, make_customer):
    customer = make_customer()
    first = enroll(marketer, crm_journey, customer_id=customer.pk, context={"order_id": "SO-1"})
    assert first.status_code == 201, first.json()
    body = first.json()
    assert body["enrolled"] is True and body["enrollment"]["node_id"] == "s1"
    enrollment = Enrollment.objects.get()
    assert enrollment.context == {"order_id": "SO-1"}
    assert Message.objects.get().recipient == "+8613800138000"

    again = enroll(marketer, crm_journey, customer_id=customer.pk, context={"order_id": "SO-2"})
    assert (again.status_code, again.json()["enrolled"]) == (200, False)  # "once ever"


def test_a_new_lead_is_created_from_its_phone(marketer, crm_journey):
    response = enroll(
        marketer, crm_journey, identities={"phone": "13900139000"}, context={"order_id": "SO-9"}
    )
    assert response.status_code == 201, response.json()
    lead = Identity.objects.get(type="phone", value="+8613900139000").customer
    assert response.json()["customer_id"] == lead.pk
    assert Enrollment.objects.get().customer == lead


def test_refusals_name_the_field(marketer, crm_journey, make_customer, tags):
    customer = make_customer()
    cases = [
        ({"context": {"order_id": "x"}}, 400, {"customer_id": ["Give either customer_id or identities."]}),
        ({"customer_id": customer.pk}, 400, {"context": ["Missing context fields: order_id."]}),
        ({"identities": {"fax": "1"}}, 400, {"identities": [UNKNOWN_FAX]}),
        (
            {"customer_id": 424242, "context": {"order_id": "x"}},
            400,
            {"customer_id": ["There is no customer 424242."]},
        ),
    ]
    for body, code, errors in cases:
        response = enroll(marketer, crm_journey, **body)
        assert (response.status_code, response.json()) == (code, errors)
    event_only = published(
        {"nodes": [node("t1", "event_trigger", event="x"), node("x1", "exit")], "edges": [edge("t1", "x1")]},
        name="事件旅程",
    )
    response = enroll(marketer, event_only, customer_id=customer.pk)
    assert response.json() == {
        "trigger": ["This journey has no API trigger; add one to enroll customers over the API."]
    }
    marketer.post(f"/api/journeys/{crm_journey.pk}/pause/")
    paused = enroll(marketer, crm_journey, customer_id=customer.pk, context={"order_id": "x"})
    assert paused.status_code == 409
    assert "/api/journeys/{journey_id}/enroll/" in marketer.get("/api/schema/").content.decode()
