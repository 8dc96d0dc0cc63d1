"""The tracking API speaks Segment's HTTP spec: what clients send is stored once, on the right customer."""

import base64
import datetime as dt
import gzip
import json

import pytest
from django.urls import reverse

from cdp.ingest import batches_process
from cdp.models import Customer, Event, IngestBatch
from cdp.services import source_set_enabled


def auth(source) -> dict:
    token = base64.b64encode(f"{source.write_key}:".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


def post(client, path, body, source=None, **extra):
    headers = auth(source) if source is not None else {}
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(path, data=data, content_type="application/json", **headers, **extra)


def test_identify_then_track_lands_on_one_customer_with_traits(client, server_source):
    identify = {
        "userId": "u-1",
        "traits": {"name": "王芳", "phone": "138 0013 8000", "email": "WF@Example.com"},
    }
    track = {"userId": "u-1", "event": "Order Completed", "properties": {"revenue": 299.5, "sku": "CAM-01"}}
    assert post(client, "/v1/identify", identify, server_source).json() == {"success": True}
    assert post(client, "/v1/track", track, server_source).status_code == 200
    assert batches_process() == 2

    customer = Customer.objects.get()
    assert customer.name == "王芳"
    assert customer.traits["email"] == "WF@Example.com"
    identities = set(customer.identities.values_list("type", "value"))
    assert identities == {("user_id", "u-1"), ("phone", "+8613800138000"), ("email", "wf@example.com")}
    order = Event.objects.get(name="Order Completed")
    assert order.customer == customer
    assert order.channel == "server"
    assert str(order.amount) == "299.50"
    assert order.properties["sku"] == "CAM-01"
    stats = customer.event_stats.get(name="Order Completed")
    assert (stats.count, str(stats.amount_sum)) == (1, "299.50")
    server_source.refresh_from_db()
    assert server_source.event_count == 2


def test_every_call_of_the_spec_is_accepted(client, source):
    calls = {
        "/v1/page": {"anonymousId": "a-1", "name": "Home", "properties": {"url": "https://shop.example/"}},
        "/v1/screen": {"anonymousId": "a-1", "name": "Cart"},
        "/v1/group": {"userId": "u-9", "groupId": "company-7", "traits": {"industry": "smart home"}},
        "/v1/alias": {"previousId": "a-1", "userId": "u-9"},
    }
    for path, body in calls.items():
        assert post(client, path, body, source).status_code == 200, path
    batches_process()
    assert set(Event.objects.values_list("name", flat=True)) == {
        "page_viewed",
        "screen_viewed",
        "group",
        "alias",
    }
    assert Event.objects.get(name="page_viewed").properties["name"] == "Home"


def test_the_write_key_may_come_in_the_body(client, source):
    body = {"writeKey": source.write_key, "batch": [{"type": "track", "anonymousId": "x", "event": "Viewed"}]}
    assert post(client, "/v1/batch", body).status_code == 200


def test_a_replayed_batch_stores_nothing_twice(client, source):
    body = {
        "batch": [
            {"type": "track", "userId": "u-2", "event": "Viewed Product", "messageId": f"m-{i}"}
            for i in range(5)
        ]
    }
    for _attempt in range(3):
        assert post(client, "/v1/batch", body, source).status_code == 200
        batches_process()
    assert Event.objects.count() == 5
    assert Customer.objects.get().event_stats.get(name="Viewed Product").count == 5


def test_client_clock_skew_is_corrected_with_sent_at(client, source):
    # The phone's clock is 2 hours fast: it says the event happened 5 minutes before it sent it.
    fast_now = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    body = {
        "sentAt": fast_now.isoformat(),
        "batch": [
            {
                "type": "track",
                "userId": "u-3",
                "event": "Opened App",
                "timestamp": (fast_now - dt.timedelta(minutes=5)).isoformat(),
                "context": {"app": {"version": "3.2.1"}, "os": {"name": "iOS"}},
            }
        ],
    }
    post(client, "/v1/batch", body, source)
    batches_process()
    event = Event.objects.get()
    expected = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    assert abs((event.timestamp - expected).total_seconds()) < 30
    assert event.context == {"app": {"version": "3.2.1"}, "os": {"name": "iOS"}}


def test_gzip_bodies_are_accepted(client, source):
    body = gzip.compress(json.dumps({"batch": [{"type": "identify", "userId": "g-1"}]}).encode())
    response = client.post(
        "/v1/batch", data=body, content_type="application/json", HTTP_CONTENT_ENCODING="gzip", **auth(source)
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ("{not json", 400, "The body is not valid JSON"),
        ({"event": "Viewed"}, 400, "body needs a userId or an anonymousId."),
        ({"userId": "u"}, 400, "body.event is required for track calls."),
        ({"userId": "u", "event": "X", "timestamp": "yesterday"}, 400, "body.timestamp is not an ISO 8601"),
        ({"userId": "u", "event": "X", "properties": [1, 2]}, 400, "body.properties must be a JSON object."),
        (
            {"userId": "u", "event": "X", "properties": {"blob": "x" * 33_000}},
            400,
            "one event may be at most",
        ),
    ],
)
def test_bad_requests_name_the_problem_and_store_nothing(client, source, body, status, message):
    response = post(client, "/v1/track", body, source)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert IngestBatch.objects.count() == 0


def test_a_bad_event_in_a_batch_is_named_by_its_index(client, source):
    body = {"batch": [{"type": "track", "userId": "u", "event": "A"}, {"type": "track", "userId": "u"}]}
    response = post(client, "/v1/batch", body, source)
    assert response.status_code == 400
    assert response.json()["error"] == "batch[1].event is required for track calls."
    assert IngestBatch.objects.count() == 0


def test_oversized_batches_get_413(client, source):
    body = {"batch": [{"type": "track", "userId": "u", "event": "A", "properties": {"p": "x" * 30_000}}] * 20}
    response = post(client, "/v1/batch", body, source)
    assert response.status_code == 413
    assert "the limit is 512000 bytes" in response.json()["error"]


def test_unknown_keys_get_401_and_disabled_sources_403(client, source):
    body = {"userId": "u", "event": "X"}
    assert post(client, "/v1/track", body).status_code == 401
    response = client.post(
        "/v1/track",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION="Basic bm9wZTo=",
    )
    assert response.status_code == 401
    assert response.json()["error"] == "Unknown write key."
    source_set_enabled(source=source, enabled=False)
    response = post(client, "/v1/track", body, source)
    assert response.status_code == 403
    assert "disabled" in response.json()["error"]


def test_only_post_is_allowed(client, source):
    assert client.get(reverse("track_track")).status_code == 405


def test_browsers_on_other_sites_may_call_it(client, source):
    preflight = client.options("/v1/batch", HTTP_ORIGIN="https://shop.example")
    assert preflight.status_code == 204
    assert preflight["Access-Control-Allow-Origin"] == "*"
    answer = post(client, "/v1/track", {"userId": "u-1", "event": "Viewed"}, source)
    assert answer["Access-Control-Allow-Origin"] == "*"
    assert client.get("/v1/track").status_code == 405
