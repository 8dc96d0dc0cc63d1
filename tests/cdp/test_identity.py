"""Identities are normalised and merge customers under the rules; merges move everything, once."""

import uuid

import pytest

from cdp.identity import decrypt_sensitive, identities_of, normalise
from cdp.ingest import batches_process, inbox_store
from cdp.merge import MergeConflict, customers_merge
from cdp.models import Customer, Event, Identity, MergeLog
from cdp.tracking import KIND_EVENT_NAMES


@pytest.mark.parametrize(
    ("identity_type", "raw", "stored"),
    [
        ("phone", "138 0013 8000", "+8613800138000"),
        ("phone", "+86-138-0013-8000", "+8613800138000"),
        ("phone", "555 0100", None),
        ("phone", "+1 415 555 2671", "+14155552671"),
        ("phone", "12345", None),
        ("email", " Li.Na@Example.COM ", "li.na@example.com"),
        ("email", "not-an-email", None),
        ("user_id", "null", None),
        ("anonymous_id", "undefined", None),
        ("user_id", "0", None),
        ("wechat_unionid", "oABC123", "oABC123"),
    ],
)
def test_identifiers_are_normalised_and_placeholders_ignored(identity_type, raw, stored):
    identity = normalise(identity_type, raw)
    assert (identity.value if identity else None) == stored


def test_id_numbers_are_stored_hashed_with_an_encrypted_copy():
    identity = normalise("id_number", "11010519491231002x")
    assert identity.value.startswith("h:") and "110105" not in identity.value
    assert decrypt_sensitive(identity.encrypted_value) == "11010519491231002X"
    assert normalise("id_number", "110105 19491231 002X").value == identity.value


def test_identifiers_are_found_in_traits_context_and_external_ids():
    message = {
        "kind": "track",
        "userId": "u-1",
        "anonymousId": "a-1",
        "context": {
            "traits": {"mobile": "13800138000", "openid": "o-xyz", "appid": "wx123"},
            "externalIds": [{"type": "wecom_external_userid", "id": "wm-1", "collection": "users"}],
        },
    }
    assert {identity.key for identity in identities_of(message)} == {
        ("user_id", "u-1"),
        ("anonymous_id", "a-1"),
        ("phone", "+8613800138000"),
        ("wechat_openid:wx123", "o-xyz"),
        ("wecom_external_userid", "wm-1"),
    }


def send(source, *messages):
    events = []
    for index, message in enumerate(messages):
        kind = message.pop("kind", "track")
        events.append(
            {
                "kind": kind,
                "name": message.pop("event", KIND_EVENT_NAMES.get(kind, "Viewed")),
                "messageId": message.pop("messageId", f"{uuid.uuid4()}-{index}"),
                "timestamp": message.pop("timestamp", "2026-11-20T10:00:00+08:00"),
                "properties": message.pop("properties", {}),
                "context": message.pop("context", {}),
                "traits": message.pop("traits", {}),
                **message,
            }
        )
    inbox_store(source=source, events=events)
    batches_process()


def test_an_event_carrying_identities_of_two_customers_merges_them(server_source):
    send(
        server_source, {"userId": "web-1", "event": "Viewed", "context": {"traits": {"phone": "13800138000"}}}
    )
    send(
        server_source,
        {
            "anonymousId": "mp-1",
            "event": "Ordered",
            "properties": {"revenue": 100},
            "context": {"traits": {"email": "a@example.com"}},
        },
    )
    assert Customer.objects.filter(merged_into=None).count() == 2

    send(
        server_source,
        {"kind": "identify", "userId": "web-1", "traits": {"email": "a@example.com", "name": "李雷"}},
    )
    survivor = Customer.objects.get(merged_into=None)
    assert survivor.name == "李雷"
    assert Event.objects.exclude(customer=survivor).count() == 0
    assert set(survivor.identities.values_list("type", flat=True)) == {
        "user_id",
        "phone",
        "anonymous_id",
        "email",
    }
    assert survivor.event_stats.get(name="Ordered").count == 1
    assert survivor.event_stats.get(name="Viewed").count == 1
    log = MergeLog.objects.get()
    assert log.survivor == survivor and log.reason == "identity"


def test_two_different_id_numbers_never_merge(server_source):
    send(
        server_source,
        {
            "userId": "u-a",
            "kind": "identify",
            "traits": {"id_number": "110105194912310021", "phone": "13800138000"},
        },
    )
    send(server_source, {"userId": "u-b", "kind": "identify", "traits": {"id_number": "310105198001010012"}})
    # A shared phone would merge them, but each holds a different ID number: they stay two people.
    send(server_source, {"userId": "u-b", "event": "Called", "context": {"traits": {"phone": "13800138000"}}})
    assert Customer.objects.filter(merged_into=None).count() == 2
    assert Identity.objects.filter(type="phone").count() == 1
    with pytest.raises(MergeConflict):
        first, second = Customer.objects.order_by("pk")
        customers_merge(survivor_id=first.pk, merged_id=second.pk, reason="manual")


def test_the_newest_trait_wins_even_when_events_arrive_late(source):
    send(
        source,
        {"kind": "identify", "userId": "u", "traits": {"city": "杭州"}, "timestamp": "2026-11-20T10:00:00Z"},
    )
    send(
        source,
        {"kind": "identify", "userId": "u", "traits": {"city": "上海"}, "timestamp": "2026-11-19T10:00:00Z"},
    )
    assert Customer.objects.get().traits["city"] == "杭州"


def test_a_later_event_that_merges_moves_the_earlier_events_of_the_same_batch(server_source):
    send(
        server_source,
        {"anonymousId": "a-1", "event": "First"},
        {"userId": "u-1", "event": "Second"},
        {"anonymousId": "a-1", "userId": "u-1", "event": "Third"},
    )
    survivor = Customer.objects.get(merged_into=None)
    assert set(survivor.events.values_list("name", flat=True)) == {"First", "Second", "Third"}
    assert {stat.name for stat in survivor.event_stats.all()} == {"First", "Second", "Third"}


def test_id_numbers_sent_as_traits_are_never_stored_in_clear(server_source):
    send(
        server_source,
        {"kind": "identify", "userId": "u-9", "traits": {"id_number": "110105194912310021", "city": "北京"}},
    )
    customer = Customer.objects.get()
    assert customer.traits == {"city": "北京"}
    assert customer.identities.get(type="id_number").value.startswith("h:")


def test_subscribe_and_unsubscribe_events_set_consent_per_channel(server_source):
    send(
        server_source,
        {
            "userId": "c-1",
            "event": "Subscribed",
            "properties": {"channel": "sms"},
            "timestamp": "2026-11-01T10:00:00Z",
        },
        {
            "userId": "c-1",
            "event": "Unsubscribed",
            "properties": {"channel": "SMS", "origin": "回复TD"},
            "timestamp": "2026-11-02T10:00:00Z",
        },
        {"userId": "c-1", "event": "Subscribed", "properties": {"channel": "email"}},
    )
    # A late-arriving older event does not undo the newer decision.
    send(
        server_source,
        {
            "userId": "c-1",
            "event": "Subscribed",
            "properties": {"channel": "sms"},
            "timestamp": "2026-10-01T10:00:00Z",
        },
    )
    consents = {consent.channel: consent for consent in Customer.objects.get().consents.all()}
    assert consents["sms"].status == "unsubscribed" and consents["sms"].origin == "回复TD"
    assert consents["email"].status == "subscribed"


def test_an_anonymous_visitor_identified_in_the_same_request_becomes_the_known_customer(server_source):
    send(server_source, {"kind": "identify", "userId": "member-1", "traits": {"name": "李雷"}})
    known = Customer.objects.get()
    send(
        server_source,
        {"anonymousId": "device-9", "event": "Product Viewed"},
        {"anonymousId": "device-9", "event": "Cart Viewed"},
        {"kind": "identify", "anonymousId": "device-9", "userId": "member-1"},
    )
    assert Customer.objects.count() == 1  # the visitor never became a customer of its own
    assert not MergeLog.objects.exists()
    assert set(known.identities.values_list("value", flat=True)) == {"member-1", "device-9"}
    assert known.events.filter(name__in=["Product Viewed", "Cart Viewed"]).count() == 2
