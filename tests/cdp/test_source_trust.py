"""A public write key asserts only what its kind may (security review, finding 2): client-side sources
(web, app, mini program) cannot subscribe anyone, merge customers by phone, email, ID number or user id,
or send the names the product records itself; no event is dated past the server's clock; an explicit
unsubscribe always wins; and the API limits each source, client address and phone number with 429."""

import base64
import datetime as dt
import json

import pytest
import redis
import time_machine

from cdp.ingest import batches_process
from cdp.models import Consent, Customer, Event, Identity, IngestBatch, Source
from cdp.services import source_create
from cdp.tracking_limits import limits_forget
from connectors.services import unsubscribe_url

NOW = dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def post(client, path, body, source, address="203.0.113.7"):
    token = base64.b64encode(f"{source.write_key}:".encode()).decode()
    return client.post(
        path,
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Basic {token}",
        REMOTE_ADDR=address,
    )


def known_customer(client, server_source) -> Customer:
    """The victim, as the company's own server knows her."""
    identify = {
        "userId": "victim-1",
        "traits": {"name": "王芳", "phone": "13800138000", "email": "fang@example.com"},
    }
    assert post(client, "/v1/identify", identify, server_source).status_code == 200
    batches_process()
    return Customer.objects.get(identities__type="user_id", identities__value="victim-1")


# -- consent -------------------------------------------------------------------------------------


def test_a_web_key_cannot_subscribe_anyone_and_the_forged_future_date_is_refused(client, source, clock):
    forged = {
        "userId": "victim-1",
        "event": "Subscribed",
        "timestamp": "2099-01-01T00:00:00Z",
        "properties": {"channel": "sms"},
    }
    response = post(client, "/v1/track", forged, source)
    assert response.status_code == 400
    assert "body.event “Subscribed” is reserved" in response.json()["error"]
    assert not IngestBatch.objects.exists()
    assert not Consent.objects.exists()


def test_a_future_dated_subscribe_cannot_outlast_a_later_unsubscribe(client, server_source, clock):
    """The review's proof, from a source that may subscribe: the 2099 date is brought back to the
    server's clock, so an unsubscribe a little later wins, and the unsubscribe page says so truly."""
    customer = known_customer(client, server_source)
    forged = {
        "userId": "victim-1",
        "event": "Subscribed",
        "timestamp": "2099-01-01T00:00:00Z",
        "properties": {"channel": "sms"},
    }
    assert post(client, "/v1/track", forged, server_source).status_code == 200
    batches_process()
    event = Event.objects.get(name="Subscribed")
    assert event.timestamp == NOW + dt.timedelta(minutes=5)
    assert event.context["clientTimestamp"] == "2099-01-01T00:00:00Z"
    assert Consent.objects.get(customer=customer, channel="sms").status == "subscribed"

    clock.shift(dt.timedelta(minutes=6))
    unsubscribe = {"userId": "victim-1", "event": "Unsubscribed", "properties": {"channel": "sms"}}
    assert post(client, "/v1/track", unsubscribe, server_source).status_code == 200
    batches_process()
    assert Consent.objects.get(customer=customer, channel="sms").status == "unsubscribed"


def test_an_unsubscribe_link_wins_over_any_dated_subscribe_and_the_page_tells_the_truth(
    client, server_source, clock
):
    customer = known_customer(client, server_source)
    # Stored before dates were bounded: a subscribe dated 2099.
    Consent.objects.create(
        customer=customer,
        channel="sms",
        status="subscribed",
        changed_at=dt.datetime(2099, 1, 1, tzinfo=dt.UTC),
    )
    path = "/" + unsubscribe_url(customer_id=customer.pk, channel="sms").split("://", 1)[1].split("/", 1)[1]
    page = client.post(path, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "You are unsubscribed" in page
    consent = Consent.objects.get(customer=customer, channel="sms")
    assert (consent.status, consent.changed_at, consent.origin) == ("unsubscribed", NOW, "link")
    assert Event.objects.filter(customer=customer, name="Unsubscribed").exists()

    # A subscribe dated a little ahead (a trusted server's drifting clock) does not undo it either.
    Consent.objects.filter(pk=consent.pk).update(
        status="subscribed", changed_at=NOW + dt.timedelta(minutes=4)
    )
    assert "You are unsubscribed" in client.post(path, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert Consent.objects.get(pk=consent.pk).status == "unsubscribed"


def test_a_stored_decision_dated_in_the_future_does_not_block_a_later_unsubscribe_event(
    client, server_source, clock
):
    customer = known_customer(client, server_source)
    Consent.objects.create(
        customer=customer,
        channel="sms",
        status="subscribed",
        changed_at=dt.datetime(2099, 1, 1, tzinfo=dt.UTC),
    )
    unsubscribe = {"userId": "victim-1", "event": "Unsubscribed", "properties": {"channel": "sms"}}
    assert post(client, "/v1/track", unsubscribe, server_source).status_code == 200
    batches_process()
    assert Consent.objects.get(customer=customer, channel="sms").status == "unsubscribed"


def test_a_web_source_may_still_unsubscribe_its_visitor(client, source, clock):
    body = {"anonymousId": "visitor-1", "event": "Unsubscribed", "properties": {"channel": "email"}}
    assert post(client, "/v1/track", body, source).status_code == 200
    batches_process()
    assert Consent.objects.get().status == "unsubscribed"


# -- identities ----------------------------------------------------------------------------------


def test_a_web_key_cannot_put_its_email_or_phone_on_someone_elses_profile(
    client, source, server_source, clock
):
    """The review's identity hijack: identify with the victim's userId (or phone) and the attacker's
    email. The victim's profile keeps exactly its own identifiers and traits."""
    victim = known_customer(client, server_source)
    before = set(victim.identities.values_list("type", "value"))
    hijack = {"userId": "victim-1", "traits": {"email": "attacker@evil.example", "phone": "13900139000"}}
    by_phone = {
        "anonymousId": "attacker-device",
        "event": "Viewed",
        "context": {"traits": {"phone": "13800138000", "email": "attacker@evil.example"}},
    }
    assert post(client, "/v1/identify", hijack, source).status_code == 200
    assert post(client, "/v1/track", by_phone, source).status_code == 200
    batches_process()

    victim.refresh_from_db()
    assert set(victim.identities.values_list("type", "value")) == before
    assert victim.traits == {"name": "王芳", "phone": "13800138000", "email": "fang@example.com"}
    assert not Identity.objects.filter(value__in=["attacker@evil.example", "+8613900139000"]).exists()
    assert not Event.objects.filter(customer=victim, source__kind="web").exists()
    # What the web said is kept, as unverified traits of the profiles that web's visitors have.
    claimed = Customer.objects.get(traits__unverified_user_id="victim-1")
    assert claimed.traits["unverified_email"] == "attacker@evil.example"
    assert claimed.traits["unverified_phone"] == "13900139000"
    assert "email" not in claimed.traits and "phone" not in claimed.traits
    device = Customer.objects.get(identities__value="attacker-device")
    assert device.traits["unverified_phone"] == "13800138000"
    assert Customer.objects.filter(merged_into=None).count() == 3


def test_a_user_id_from_the_web_groups_that_sources_events_without_reaching_the_real_user(
    client, source, server_source, clock
):
    victim = known_customer(client, server_source)
    for name in ("A", "B"):
        assert post(client, "/v1/track", {"userId": "victim-1", "event": name}, source).status_code == 200
    batches_process()
    web_profile = Customer.objects.get(events__name="A")
    assert web_profile != victim
    assert set(web_profile.events.values_list("name", flat=True)) == {"A", "B"}
    assert list(web_profile.identities.values_list("type", "value")) == [
        ("anonymous_id", "unverified-user:victim-1")
    ]


def test_a_trusted_source_confirms_what_the_web_said(client, source, server_source, clock):
    """The confirmation hook: the visitor's anonymousId with the phone, from a trusted source (the
    company's server, or later a verified form), joins the visitor to the phone's owner."""
    victim = known_customer(client, server_source)
    web = {"anonymousId": "device-7", "traits": {"phone": "13800138000"}}
    assert post(client, "/v1/identify", web, source).status_code == 200
    batches_process()
    assert Customer.objects.filter(merged_into=None).count() == 2

    confirmed = {"anonymousId": "device-7", "traits": {"phone": "13800138000"}}
    assert post(client, "/v1/identify", confirmed, server_source).status_code == 200
    batches_process()
    assert Customer.objects.get(merged_into=None) == victim
    assert ("anonymous_id", "device-7") in set(victim.identities.values_list("type", "value"))


def test_id_numbers_from_the_web_are_neither_merged_by_nor_kept_in_clear(client, source, clock):
    body = {"anonymousId": "device-1", "traits": {"id_number": "110105194912310021", "city": "北京"}}
    assert post(client, "/v1/identify", body, source).status_code == 200
    batches_process()
    customer = Customer.objects.get()
    assert customer.traits == {"city": "北京"}
    assert not customer.identities.filter(type="id_number").exists()


# -- reserved names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Subscribed",
        "message_clicked",
        "message_delivered",
        "task_closed",
        "segment_entered",
        "tag_added",
        "stage_changed",
        "trait_set",
        "contact_policy_skipped",
    ],
)
def test_client_side_sources_cannot_send_reserved_names(db, client, name, clock):
    for kind in (Source.Kind.WEB, Source.Kind.APP, Source.Kind.MINI_PROGRAM):
        source = source_create(name=f"{kind} source", kind=kind)
        batch = {
            "batch": [
                {"type": "track", "anonymousId": "a-1", "event": "Product Viewed"},
                {"type": "track", "anonymousId": "a-1", "event": name, "properties": {"channel": "sms"}},
            ]
        }
        response = post(client, "/v1/batch", batch, source)
        assert response.status_code == 400
        assert response.json()["error"].startswith(f"batch[1].event “{name}” is reserved")
    assert not IngestBatch.objects.exists()


def test_trusted_sources_may_send_reserved_names(client, server_source, clock):
    body = {"userId": "u-1", "event": "message_clicked", "properties": {"channel": "sms"}}
    assert post(client, "/v1/track", body, server_source).status_code == 200


# -- time ----------------------------------------------------------------------------------------


def test_event_times_are_never_later_than_the_servers_clock_plus_five_minutes(client, source, clock):
    events = {
        "batch": [
            {"type": "track", "anonymousId": "a", "event": "Future", "timestamp": "2099-01-01T00:00:00Z"},
            # A sentAt correction that keeps a future offset is bounded too.
            {
                "type": "track",
                "anonymousId": "a",
                "event": "Shifted",
                "timestamp": "2099-01-01T00:00:00Z",
                "sentAt": "2030-01-01T00:00:00Z",
            },
            {"type": "track", "anonymousId": "a", "event": "Skewed", "timestamp": "2026-12-07T10:03:00Z"},
        ]
    }
    assert post(client, "/v1/batch", events, source).status_code == 200
    batches_process()
    stored = dict(Event.objects.values_list("name", "timestamp"))
    assert stored["Future"] == stored["Shifted"] == NOW + dt.timedelta(minutes=5)
    assert stored["Skewed"] == dt.datetime(2026, 12, 7, 10, 3, tzinfo=dt.UTC)  # within the skew: kept
    assert Event.objects.get(name="Future").context == {"clientTimestamp": "2099-01-01T00:00:00Z"}
    assert "clientTimestamp" not in Event.objects.get(name="Skewed").context


# -- rate limits ---------------------------------------------------------------------------------


def flood(client, source, count, address="203.0.113.7", phone=None):
    statuses = []
    for number in range(count):
        body = {"anonymousId": f"a-{number}", "event": "Form Submitted"}
        if phone:
            body["context"] = {"traits": {"phone": phone}}
        statuses.append(post(client, "/v1/track", body, source, address=address))
    return statuses


def test_one_address_flooding_a_web_key_gets_429_with_retry_after_and_others_go_on(
    client, source, settings, clock
):
    settings.TRACKING_ADDRESS_RATE = 2  # a burst of 10, then 2 a second
    answers = flood(client, source, 12)
    assert [answer.status_code for answer in answers] == [200] * 10 + [429] * 2
    refused = answers[-1]
    assert refused["Retry-After"] == "1"
    assert refused["Access-Control-Allow-Origin"] == "*"  # a browser can read why
    assert "Too many requests" in refused.json()["error"]
    assert IngestBatch.objects.count() == 10
    # Another visitor of the same site is not held up.
    assert flood(client, source, 1, address="198.51.100.9")[0].status_code == 200
    clock.shift(dt.timedelta(seconds=1))
    assert [answer.status_code for answer in flood(client, source, 3)] == [200, 200, 429]


def test_once_refused_an_address_is_answered_before_its_body_is_even_read(client, source, settings, clock):
    settings.TRACKING_ADDRESS_RATE = 1  # a burst of 5
    assert [answer.status_code for answer in flood(client, source, 6)][-1] == 429
    broken = {"anonymousId": "a", "type": "nonsense"}
    assert post(client, "/v1/track", broken, source).status_code == 429  # not parsed: no 400
    assert post(client, "/v1/track", broken, source, address="198.51.100.9").status_code == 400
    clock.shift(dt.timedelta(seconds=1))
    assert post(client, "/v1/track", broken, source).status_code == 400


def test_a_server_source_is_not_limited_per_address(client, server_source, settings, clock):
    settings.TRACKING_ADDRESS_RATE = 1
    assert {answer.status_code for answer in flood(client, server_source, 20)} == {200}


def test_a_source_as_a_whole_is_limited(client, source, settings, clock):
    settings.TRACKING_SOURCE_RATE = 3  # a burst of 6
    statuses = [
        flood(client, source, 1, address=f"198.51.100.{number}")[0].status_code for number in range(8)
    ]
    assert statuses == [200] * 6 + [429] * 2


def test_events_naming_one_phone_are_limited_whatever_the_address(client, source, clock):
    statuses = [
        flood(client, source, 1, address=f"198.51.100.{number}", phone="138 0013 8000")[0].status_code
        for number in range(12)
    ]
    assert statuses == [200] * 10 + [429] * 2  # TRACKING_PHONE_EVENTS_PER_MINUTE
    # Written differently, the same number.
    assert flood(client, source, 1, address="192.0.2.1", phone="+86 13800138000")[0].status_code == 429
    assert flood(client, source, 1, address="192.0.2.1", phone="13900139000")[0].status_code == 200
    clock.shift(dt.timedelta(seconds=6))
    assert flood(client, source, 1, address="192.0.2.2", phone="13800138000")[0].status_code == 200


def test_with_redis_the_limits_hold_across_web_processes(client, source, settings, redis_url, clock):
    settings.REDIS_URL = redis_url
    settings.TRACKING_ADDRESS_RATE = 2
    assert {answer.status_code for answer in flood(client, source, 10)} == {200}
    limits_forget()  # as another web process would start: with its own memory, but the same Redis
    assert flood(client, source, 1)[0].status_code == 429
    assert redis.Redis.from_url(redis_url).exists(f"cdp:limit:address:{source.pk}:203.0.113.7")


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "in-process"])
def test_a_request_carrying_an_earlier_time_does_not_refill_a_bucket_twice(
    client, source, settings, redis_url, clock, shared
):
    """Requests run in threads: one may reach the limiter with an earlier time than the one before."""
    settings.REDIS_URL = redis_url if shared else None
    settings.TRACKING_ADDRESS_RATE = 2  # a burst of 10
    assert {answer.status_code for answer in flood(client, source, 9)} == {200}
    clock.move_to(NOW + dt.timedelta(seconds=1))
    assert flood(client, source, 1)[0].status_code == 200
    clock.move_to(NOW + dt.timedelta(seconds=0.5))  # a thread that read the clock a little earlier
    assert flood(client, source, 1)[0].status_code == 200
    clock.move_to(NOW + dt.timedelta(seconds=1))
    assert [answer.status_code for answer in flood(client, source, 2)] == [200, 429]


def test_without_redis_the_api_still_answers_and_limits_in_its_process(client, source, settings, clock):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    settings.TRACKING_ADDRESS_RATE = 2
    assert [answer.status_code for answer in flood(client, source, 11)] == [200] * 10 + [429]
