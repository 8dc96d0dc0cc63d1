"""The tracking API (/v1/*) under generated input, well-formed and garbage: never a server error,
never an answer slower than 2 s, every refusal names its problem, and every event it accepts is
stored, once, by the ingest workers (nothing accepted is lost)."""

import base64
import datetime as dt
import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.ingest import batches_process
from cdp.models import Event, IngestBatch
from tests.answer_time import answered_in_time

PATHS = ("/v1/identify", "/v1/track", "/v1/page", "/v1/screen", "/v1/group", "/v1/alias", "/v1/batch")
FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# Text as clients send it: any unicode (astral planes, right-to-left, NUL, lone surrogates), long.
any_text = st.text(max_size=40) | st.text(min_size=200, max_size=3000)
scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | any_text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
# Text a well-formed event may hold: any unicode but NUL (PostgreSQL text cannot hold it) and lone surrogates.
clean_characters = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))
clean_text = st.text(clean_characters, max_size=40) | st.text(clean_characters, min_size=200, max_size=3000)
clean_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | clean_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(clean_text, inner, max_size=4),
    max_leaves=12,
)


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


timestamps = st.one_of(
    st.datetimes(
        min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2099, 1, 1), timezones=st.timezones()
    ).map(dt.datetime.isoformat),
    st.sampled_from(
        ["yesterday", "2026-13-45T25:61:00Z", "", "0000-00-00", "9999-12-31T23:59:59Z", "1970-01-01"]
    ),
    json_values,
)
identifiers = st.one_of(
    st.text(clean_characters, min_size=1, max_size=60).filter(str.strip),
    st.integers(min_value=1, max_value=2**63 - 1),
)

# An event as Segment's clients shape it, each field of the right type.
valid_events = st.fixed_dictionaries(
    {
        "userId": identifiers,
        "event": st.text(clean_characters, min_size=1, max_size=250),
        "messageId": st.uuids().map(str),
        "timestamp": st.datetimes(
            min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2026, 1, 1), timezones=st.timezones()
        ).map(dt.datetime.isoformat),
        "properties": st.dictionaries(st.text(clean_characters, max_size=20), clean_values, max_size=5),
        "traits": st.dictionaries(
            st.sampled_from(["name", "phone", "email", "id_number", "city", "手机号", "company"]),
            clean_text,
            max_size=4,
        ),
        "context": st.fixed_dictionaries(
            {}, optional={"traits": st.dictionaries(st.text(clean_characters, max_size=10), clean_text)}
        ),
    },
    optional={
        "anonymousId": identifiers,
        "groupId": identifiers,
        "previousId": identifiers,
        "name": clean_text,
    },
)

# The same fields with anything in them, fields missing, unknown fields, deep nesting.
garbage_events = st.one_of(
    json_values,
    st.dictionaries(
        st.sampled_from(
            [
                *("userId", "anonymousId", "event", "type", "messageId", "timestamp", "sentAt", "properties"),
                *("traits", "context", "groupId", "previousId", "name", "writeKey", "batch", "extra"),
            ]
        ),
        st.one_of(json_values, timestamps, st.integers(0, 600).map(nested)),
        max_size=8,
    ),
)


def auth(source) -> dict:
    token = base64.b64encode(f"{source.write_key}:".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


def post(client, source, path: str, body: bytes):
    response = answered_in_time(
        lambda: client.post(path, data=body, content_type="application/json", **auth(source)), path
    )
    assert response.status_code < 500, (path, body[:300], response.content[:300])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error, str) and len(error) > 10, response.json()
    return response


def encoded(body) -> bytes:
    return json.dumps(body, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")


def accepted_are_stored(events: list[dict]) -> None:
    """The ingest workers take every accepted batch, store each event once and leave nothing behind."""
    batches_process()
    assert list(IngestBatch.objects.values_list("error", flat=True)) == []
    for event in events:
        if event.get("messageId"):
            assert Event.objects.filter(message_id=str(event["messageId"])[:200]).count() == 1


@pytest.fixture
def fuzz_client(client, server_source):
    return client, server_source


@settings(FUZZ, max_examples=25)  # each also runs the ingest workers' processing
@given(path=st.sampled_from(PATHS), event=valid_events)
def test_well_formed_events_are_accepted_and_stored(fuzz_client, path, event):
    client, source = fuzz_client
    event = {**event, "messageId": str(uuid.uuid4())}
    if path == "/v1/alias":
        event.setdefault("previousId", "previous-1")
    if path == "/v1/group":
        event.setdefault("groupId", "group-1")
    body = {"batch": [{**event, "type": "track"}]} if path == "/v1/batch" else event
    response = post(client, source, path, encoded(body))
    assert response.status_code == 200, response.json()
    accepted_are_stored([event])


@FUZZ
@given(path=st.sampled_from(PATHS), body=garbage_events, wrap=st.booleans())
def test_garbage_is_refused_with_its_problem_named_or_stored(fuzz_client, path, body, wrap):
    client, source = fuzz_client
    if wrap:  # inside a batch, where each event is checked by its index
        body = {"batch": [body, body]}
    response = post(client, source, path, encoded(body))
    if response.status_code == 200:
        events = body["batch"] if path == "/v1/batch" and isinstance(body, dict) else [body]
        accepted_are_stored([event for event in events if isinstance(event, dict)])


@FUZZ
@given(
    raw=st.binary(max_size=2000)
    | st.text(max_size=2000).map(lambda text: text.encode("utf-8", "surrogatepass"))
)
def test_bytes_that_are_not_json_are_refused_with_their_problem_named(fuzz_client, raw):
    client, source = fuzz_client
    post(client, source, "/v1/track", raw)


@pytest.mark.parametrize("depth", [100, 1000, 20_000])
def test_deeply_nested_bodies_are_refused_quickly(fuzz_client, depth):
    client, source = fuzz_client
    body = (
        '{"userId": "u", "event": "E", "properties": ' + '{"a": ' * depth + "1" + "}" * depth + "}"
    ).encode()
    post(client, source, "/v1/track", body)
