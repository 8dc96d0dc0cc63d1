"""The tracking API as the product serves it: daphne answering /v1 calls before Django's middleware.
Segment's client works against it unchanged, browsers may call it from other sites, and what it refuses
it names; everything else still reaches Django."""

import base64
import http.client
import json

import pytest
from segment.analytics import Client

from cdp.ingest import batches_process
from cdp.models import Customer, IngestBatch
from tests.processes import ProcessGroup, current_database_url, free_port, get, wait_until


@pytest.fixture
def daphne(transactional_db, tmp_path, redis_url):
    port = free_port()
    group = ProcessGroup(
        {"DATABASE_URL": current_database_url(), "CELERY_BROKER_URL": redis_url, "REDIS_URL": redis_url},
        tmp_path,
    )
    group.start("web", "daphne", "-b", "127.0.0.1", "-p", str(port), "cdp.asgi:application")
    wait_until(lambda: get(f"http://127.0.0.1:{port}/login/")[0] == 200, timeout=60, what="daphne")
    yield port
    group.stop_all()


def call(port, method, path, body=b"", headers=None, chunked=False):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    if chunked:  # no Content-Length: the server learns the size only by reading
        connection.putrequest(method, path)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        for start in range(0, len(body), 64 * 1024):
            piece = body[start : start + 64 * 1024]
            try:
                connection.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered before reading it all
        else:
            connection.send(b"0\r\n\r\n")
    else:
        connection.request(method, path, body, headers or {})
    response = connection.getresponse()
    return response.status, response.headers, response.read()  # headers: case-insensitive


def basic(source) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{source.write_key}:".encode()).decode()}


def test_segments_client_through_daphne_lands_on_one_customer(daphne, source):
    errors = []
    client = Client(
        source.write_key,
        host=f"http://127.0.0.1:{daphne}",
        sync_mode=True,
        on_error=lambda error, _batch: errors.append(error),
    )
    client.identify("buyer-8", {"name": "周宁", "email": "ZN@example.com"})
    client.track("buyer-8", "Order Completed", {"revenue": 99})
    client.flush()
    assert errors == []
    batches_process()
    customer = Customer.objects.get(merged_into=None)
    assert customer.name == "周宁"
    assert set(customer.events.values_list("name", flat=True)) == {"identify", "Order Completed"}


def test_a_browser_on_another_site_may_call_it(daphne, source):
    status, headers, _body = call(
        daphne,
        "OPTIONS",
        "/v1/track",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    assert status == 204
    assert headers["access-control-allow-origin"] == "*"
    assert "POST" in headers["access-control-allow-methods"]
    assert "Authorization" in headers["access-control-allow-headers"]

    # analytics.js posts text/plain with the write key in the body, so no preflight is needed
    body = json.dumps({"writeKey": source.write_key, "anonymousId": "v-1", "event": "Viewed"}).encode()
    status, headers, answer = call(daphne, "POST", "/v1/track", body, {"Content-Type": "text/plain"})
    assert (status, json.loads(answer)) == (200, {"success": True})
    assert headers["access-control-allow-origin"] == "*"


def test_refusals_name_the_problem(daphne, source):
    status, headers, answer = call(daphne, "GET", "/v1/batch")
    assert status == 405 and "POST" in headers["allow"]

    status, headers, answer = call(
        daphne, "POST", "/v1/track", b'{"userId": "u", "event": "E"}', {"Authorization": "Basic eDo="}
    )
    assert status == 401 and headers["www-authenticate"].startswith("Basic")
    assert json.loads(answer) == {"success": False, "error": "Unknown write key."}

    status, _headers, answer = call(daphne, "POST", "/v1/track", b'{"userId": "u"}', basic(source))
    assert status == 400 and "event is required" in json.loads(answer)["error"]

    huge = json.dumps({"batch": [{"type": "track", "userId": "u", "event": "E", "x": "y" * 400_000}] * 2})
    for chunked in (False, True):
        status, _headers, answer = call(daphne, "POST", "/v1/batch", huge.encode(), basic(source), chunked)
        assert status == 413, chunked
        assert "the limit is 512000 bytes" in json.loads(answer)["error"]
    assert not IngestBatch.objects.exists()


def test_other_paths_and_foreign_hosts_reach_django(daphne, source):
    body = b'{"userId": "u", "event": "E"}'
    foreign = {**basic(source), "Host": "evil.example"}
    status, _headers, _answer = call(daphne, "POST", "/v1/track", body, foreign)
    assert status == 400  # Django's answer to a host it does not serve
    assert not IngestBatch.objects.exists()
    status, _body = get(f"http://127.0.0.1:{daphne}/v1/unknown")
    assert status == 404
    status, body = get(f"http://127.0.0.1:{daphne}/login/")
    assert status == 200 and b"csrfmiddlewaretoken" in body
