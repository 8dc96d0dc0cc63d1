"""Segment's own Python client, unchanged, pointed at our server; and fuzzed requests never give a 500."""

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from segment.analytics import Client

from cdp.ingest import batches_process
from cdp.models import Customer, Event


@pytest.mark.django_db(transaction=True)
def test_segments_python_client_works_unchanged(live_server, server_source):
    errors = []
    client = Client(
        server_source.write_key,
        host=live_server.url,
        sync_mode=True,
        on_error=lambda error, _batch: errors.append(error),
    )
    client.identify("buyer-42", {"name": "陈晨", "phone": "+86 139 1234 5678", "role": "buyer"})
    client.track("buyer-42", "Product Viewed", {"category": "smart-lock", "price": 899})
    client.page("buyer-42", "Shop", "Smart locks", {"url": "https://shop.example/locks"})
    client.track(anonymous_id="visitor-7", event="Signed Up", context={"traits": {"phone": "13912345678"}})
    client.flush()
    assert errors == []

    batches_process()
    customer = Customer.objects.get(merged_into=None)  # the phone joined the visitor to buyer-42
    assert customer.name == "陈晨"
    assert set(customer.events.values_list("name", flat=True)) == {
        "identify",
        "Product Viewed",
        "page_viewed",
        "Signed Up",
    }
    assert Event.objects.get(name="page_viewed").properties["name"] == "Smart locks"
    assert ("anonymous_id", "visitor-7") in set(customer.identities.values_list("type", "value"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
messages = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["track", "identify", "page", "screen", "group", "alias", "bogus"])
        | st.text(),
        "userId": json_values,
        "anonymousId": json_values,
        "event": json_values,
        "timestamp": json_values | st.datetimes().map(lambda moment: moment.isoformat()),
        "properties": json_values,
        "traits": json_values,
        "context": json_values,
        "messageId": json_values,
        "previousId": json_values,
        "groupId": json_values,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(["/v1/track", "/v1/identify", "/v1/page", "/v1/alias", "/v1/batch"]),
    body=messages,
    batch=st.lists(messages, max_size=5),
    sent_at=json_values,
)
def test_fuzzed_requests_never_give_a_server_error(client, source, path, body, batch, sent_at):
    payload = {"batch": batch, "sentAt": sent_at} if path == "/v1/batch" else {**body, "sentAt": sent_at}
    response = client.post(
        path,
        data=json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{source.write_key}:".encode()).decode(),
    )
    assert response.status_code in (200, 400, 413), response.content
    if response.status_code == 200:
        batches_process()  # and processing what was accepted never fails either
