"""Merges staff can see, make, review and undo; identity rules admins can change."""

import datetime as dt

from django.urls import reverse

from cdp.identity import rules_reload
from cdp.identity_rules import rules_list
from cdp.models import Consent, Customer, CustomerEventDaily, Event, MergeLog, MergeReview
from segments.models import CustomerTag, Tag
from tests.cdp.test_identity import send


def active():
    return Customer.objects.filter(merged_into=None)


def two_people_with_id_numbers_and_one_phone(source):
    send(
        source,
        {
            "kind": "identify",
            "userId": "a",
            "traits": {"id_number": "110105194912310021", "phone": "13800138000"},
        },
    )
    send(source, {"kind": "identify", "userId": "b", "traits": {"id_number": "310105198001010012"}})
    send(source, {"userId": "b", "event": "Called", "context": {"traits": {"phone": "13800138000"}}})


def test_a_merge_the_rules_forbid_waits_for_review_and_staff_decide(client, user_in_role, server_source):
    two_people_with_id_numbers_and_one_phone(server_source)
    review = MergeReview.objects.get(status="open")
    assert "merging would break an identity rule" in review.reason
    # Sales may keep them apart, but merging against the rules is for those who manage data.
    client.force_login(user_in_role("Sales"))
    response = client.post(reverse("merge_review_resolve", args=[review.pk]), {"decision": "merge"})
    assert response.status_code == 403
    assert active().count() == 2

    client.force_login(user_in_role("Admin"))
    page = client.get(reverse("merge_reviews"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Same person: merge" in page
    client.post(reverse("merge_review_resolve", args=[review.pk]), {"decision": "merge"})
    assert active().count() == 1
    assert active().get().identities.filter(type="id_number").count() == 2
    review.refresh_from_db()
    assert review.status == "merged"


def test_keeping_apart_closes_the_review(client, user_in_role, server_source):
    two_people_with_id_numbers_and_one_phone(server_source)
    review = MergeReview.objects.get()
    client.force_login(user_in_role("Sales"))
    client.post(reverse("merge_review_resolve", args=[review.pk]), {"decision": "apart"})
    assert active().count() == 2
    assert MergeReview.objects.get().status == "kept_apart"


def test_staff_merge_two_profiles_by_hand_and_undo_it(client, user_in_role, server_source):
    send(server_source, {"userId": "web-9", "event": "Viewed", "properties": {"revenue": 5}})
    send(
        server_source,
        {
            "userId": "shop-9",
            "event": "Order Completed",
            "properties": {"revenue": 300},
            "context": {"traits": {"phone": "13600001111"}},
        },
    )
    first, second = Customer.objects.order_by("pk")
    client.force_login(user_in_role("Sales"))
    response = client.post(reverse("customer_merge", args=[first.pk]), {"other": "136 0000 1111"})
    assert response["Location"] == reverse("customer", args=[first.pk])
    assert active().count() == 1
    assert first.event_stats.get(name="Order Completed").count == 1

    log = first.merges_in.get()
    client.post(reverse("customer_unmerge", args=[first.pk, log.pk]))
    assert active().count() == 2
    assert set(Event.objects.filter(customer=second).values_list("name", flat=True)) == {"Order Completed"}
    assert set(first.identities.values_list("value", flat=True)) == {"web-9"}
    assert not first.event_stats.filter(name="Order Completed").exists()
    assert str(second.event_stats.get(name="Order Completed").amount_sum) == "300.00"


def test_analysts_cannot_merge(client, user_in_role, source):
    send(source, {"userId": "x", "event": "A"}, {"userId": "y", "event": "B"})
    first, _second = Customer.objects.order_by("pk")
    client.force_login(user_in_role("Analyst"))
    assert client.post(reverse("customer_merge", args=[first.pk]), {"other": "y"}).status_code == 403
    assert active().count() == 2


def test_admins_tighten_a_rule_and_new_events_follow_it(client, admin_user, server_source):
    client.force_login(admin_user)
    # What the page posts: every type's current values, with the admin's changes.
    form = {}
    for rule in rules_list():
        form[f"{rule['type']}.priority"] = str(rule["priority"])
        form[f"{rule['type']}.max_per_customer"] = str(rule["max_per_customer"] or "")
        form[f"{rule['type']}.blocked_values"] = rule["blocked_values"]
    form.update({"phone.max_per_customer": "1", "user_id.blocked_values": "guest, 888"})
    response = client.post(reverse("settings_identity_rules"), form, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 302
    rules_reload()
    send(
        server_source,
        {
            "userId": "888",
            "event": "A",
            "context": {"traits": {"phone": "13800000001", "email": "x@example.com"}},
        },
    )
    send(
        server_source,
        {
            "userId": "u2",
            "event": "B",
            "context": {"traits": {"phone": "13800000002", "email": "x@example.com"}},
        },
    )
    assert not Customer.objects.filter(identities__value="888").exists()  # blocked
    assert active().count() == 2  # one phone per customer now: the shared email may not merge them
    assert MergeReview.objects.filter(status="open").count() == 1


def test_bad_rule_input_names_the_type_and_field(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        reverse("settings_identity_rules"),
        {"phone.priority": "high", "phone.max_per_customer": "0"},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    html = response.content.decode()
    assert "phone.priority" in html and "Use a whole number from 0 to 1000." in html


def test_the_review_queue_reads_in_the_same_few_queries_however_long(
    client, user_in_role, server_source, django_assert_max_num_queries
):
    def pairs(count, offset):
        for number in range(offset, offset + count):
            send(
                server_source,
                {
                    "kind": "identify",
                    "userId": f"a{number}",
                    "traits": {"id_number": f"11010519491231{number:04d}"},
                },
            )
            send(
                server_source,
                {
                    "kind": "identify",
                    "userId": f"b{number}",
                    "traits": {"id_number": f"31010519800101{number:04d}"},
                },
            )
            send(
                server_source,
                {
                    "userId": f"a{number}",
                    "event": "X",
                    "context": {"externalIds": [{"type": "user_id", "id": f"b{number}"}]},
                },
            )

    client.force_login(user_in_role("Sales"))
    pairs(1, 0)
    with django_assert_max_num_queries(12) as one:
        client.get(reverse("merge_reviews"))
    pairs(5, 1)
    assert MergeReview.objects.filter(status="open").count() == 6
    with django_assert_max_num_queries(len(one.captured_queries)):
        page = client.get(reverse("merge_reviews"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert page.count("Same person: merge") == 6
    assert "a5" in page and "b5" in page


def test_visitors_identified_as_one_person_in_one_request_end_as_one_profile_with_everything(server_source):
    """Three earlier visitors, then one request identifying all three as one user: they merge in
    one go into the oldest, and nothing of theirs is lost or counted twice."""
    for visitor in ("v1", "v2", "v3"):
        send(
            server_source,
            {"anonymousId": visitor, "event": "Product Viewed", "properties": {"revenue": 10}},
            {"anonymousId": visitor, "event": "Product Viewed", "timestamp": "2026-11-21T10:00:00+08:00"},
        )
    first, second, third = Customer.objects.order_by("pk")
    vip, newsletter = Tag.objects.create(key="vip", name="VIP"), Tag.objects.create(key="news", name="News")
    CustomerTag.objects.create(customer=second, tag=vip)
    CustomerTag.objects.create(customer=third, tag=vip)
    CustomerTag.objects.create(customer=third, tag=newsletter)
    moment = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    Consent.objects.create(customer=second, channel="sms", status="unsubscribed", changed_at=moment)
    Consent.objects.create(
        customer=third, channel="sms", status="subscribed", changed_at=moment + dt.timedelta(hours=1)
    )

    send(
        server_source,
        {"kind": "identify", "userId": "member-7", "anonymousId": "v2"},
        {"kind": "identify", "userId": "member-7", "anonymousId": "v3"},
        {"kind": "identify", "userId": "member-7", "anonymousId": "v1"},
    )

    assert list(active()) == [first]
    assert set(first.identities.values_list("value", flat=True)) == {"v1", "v2", "v3", "member-7"}
    stats = first.event_stats.get(name="Product Viewed")
    assert (stats.count, str(stats.amount_sum)) == (6, "30.00")
    daily = CustomerEventDaily.objects.filter(customer_id=first.pk, name="Product Viewed")
    assert sorted(daily.values_list("count", flat=True)) == [3, 3]
    assert sorted(CustomerTag.objects.filter(customer=first).values_list("tag__key", flat=True)) == [
        "news",
        "vip",
    ]
    assert first.consents.get(channel="sms").status == "subscribed"
    assert Event.objects.filter(customer=first).count() == 9
    logs = MergeLog.objects.filter(survivor=first).order_by("merged_id")
    assert [(log.merged_id, log.reason) for log in logs] == [(second.pk, "identity"), (third.pk, "identity")]
    assert [len(log.consents) for log in logs] == [1, 1]
