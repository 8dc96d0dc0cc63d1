"""Segments through the API: a live preview while editing, saved segments whose membership changes
as a diff with events on each customer's timeline, and refusals that say what is wrong and where."""

import pytest

from cdp.models import CustomerEventStats, Event
from segments.models import MembershipChange, Segment, SegmentMember
from segments.services import membership_events_pending, membership_events_write
from tests.cdp.test_open_api import api  # noqa: F401 (fixture)
from tests.segments.test_rule_agreement import store

LAPSED = {
    "and": [{"event": "Order Completed"}, {"event": "Order Completed", "did": False, "within_days": 30}]
}


def buyer(days_ago):
    return {
        "traits": {"city": "深圳"},
        "role": None,
        "events": [("Order Completed", days_ago, 12, {"revenue": 99})],
        "tags": set(),
        "segments": set(),
        "consent": None,
    }


def order_ingested(source, customer, message_id: str) -> None:
    """An "Order Completed" for the customer, stored and processed as a worker would, in a group of its
    own."""
    from django.utils import timezone

    from cdp.ingest import batches_process, inbox_store

    message = {
        "kind": "track",
        "name": "Order Completed",
        "messageId": message_id,
        "userId": customer.identities.get(type="user_id").value,
        "anonymousId": None,
        "timestamp": timezone.now().isoformat(),
        "properties": {},
        "context": {},
        "traits": {},
    }
    inbox_store(source=source, enqueue=False, events=[message])
    batches_process()


@pytest.fixture
def buyers(source):
    return store(source, [buyer(3), buyer(40), buyer(50)])


def test_the_preview_counts_and_shows_who_matches_while_editing(api, user_in_role, buyers):  # noqa: F811
    client = api(user_in_role("Marketer"))
    response = client.post("/api/segments/preview/", {"rule": LAPSED}, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["count"] == 2
    assert {row["id"] for row in response.json()["sample"]} == {buyers[1].pk, buyers[2].pk}

    response = client.post(
        "/api/segments/preview/",
        {"rule": {"and": [{"event": "Order Complete"}, {"event": "Order Completed", "within_days": 0}]}},
        content_type="application/json",
    )
    assert response.status_code == 400
    problems = {problem["path"]: problem["message"] for problem in response.json()["errors"]}
    assert problems == {
        "$.and[0].event": "no event is called “Order Complete”; did you mean “Order Completed”?",
        "$.and[1].within_days": "Input should be greater than or equal to 1",
    }


def test_a_saved_segment_holds_its_members_and_changes_by_diff(api, user_in_role, buyers):  # noqa: F811
    client = api(user_in_role("Marketer"))
    response = client.post(
        "/api/segments/",
        {"key": "lapsed", "name": "30 天未下单", "rule": LAPSED},
        content_type="application/json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["member_count"] == 2
    segment = Segment.objects.get(key="lapsed")
    assert set(SegmentMember.objects.filter(segment=segment).values_list("customer_id", flat=True)) == {
        buyers[1].pk,
        buyers[2].pk,
    }
    # The timeline events follow the membership (a worker's task, queued at the commit).
    assert not Event.objects.filter(name="segment_entered").exists()
    assert membership_events_pending() == 2
    assert membership_events_pending() == 0  # written once, never twice
    entered = Event.objects.filter(name="segment_entered", properties__segment="lapsed")
    assert set(entered.values_list("customer_id", flat=True)) == {buyers[1].pk, buyers[2].pk}
    assert CustomerEventStats.objects.get(customer=buyers[1], name="segment_entered").count == 1

    # Narrowed to 45 days: one stays, one leaves, nobody enters twice.
    narrowed = {"and": [*LAPSED["and"], {"event": "Order Completed", "within_days": 45}]}
    response = client.post(
        "/api/segments/",
        {"key": "lapsed", "name": "30 天未下单", "rule": narrowed},
        content_type="application/json",
    )
    assert response.json()["member_count"] == 1
    assert list(SegmentMember.objects.filter(segment=segment).values_list("customer_id", flat=True)) == [
        buyers[1].pk
    ]
    membership_events_pending()
    assert Event.objects.filter(name="segment_exited", customer=buyers[2]).count() == 1
    assert Event.objects.filter(name="segment_entered").count() == 2

    response = client.post(f"/api/segments/{segment.pk}/refresh/")
    assert response.json() == {"entered": 0, "exited": 0, "member_count": 1}


def test_a_segment_cannot_build_on_itself(api, user_in_role, buyers):  # noqa: F811
    client = api(user_in_role("Marketer"))
    for key, rule in (("a", LAPSED), ("b", {"segment": "a"})):
        response = client.post(
            "/api/segments/", {"key": key, "name": key, "rule": rule}, content_type="application/json"
        )
        assert response.status_code == 201
    response = client.post(
        "/api/segments/",
        {"key": "a", "name": "a", "rule": {"and": [LAPSED, {"segment": "b"}]}},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"path": "$", "message": "refers back to itself: segment:a → segment:b → segment:a"}
    ]
    assert Segment.objects.get(key="a").rule == LAPSED  # nothing stored


def test_analysts_neither_preview_nor_save(api, user_in_role, buyers):  # noqa: F811
    """Readers see segments; counting any rule they write is for those who build them (a count per
    rule would let a reader probe the data one question at a time)."""
    client = api(user_in_role("Analyst"))
    response = client.post(
        "/api/segments/", {"key": "x", "name": "x", "rule": LAPSED}, content_type="application/json"
    )
    assert response.status_code == 403
    assert not Segment.objects.filter(key="x").exists()
    response = client.post("/api/segments/preview/", {"rule": LAPSED}, content_type="application/json")
    assert response.status_code == 403


def test_membership_events_resume_where_the_last_chunk_committed(api, user_in_role, buyers):  # noqa: F811
    client = api(user_in_role("Marketer"))
    client.post(
        "/api/segments/",
        {"key": "all", "name": "all", "rule": {"trait": "city", "op": "exists"}},
        content_type="application/json",
    )
    change = MembershipChange.objects.get(segment__key="all")
    assert len(change.entered) == 3
    # One chunk of two, then the worker "dies": the next run writes only the rest.
    from segments import services

    original = services._events_insert
    calls = []

    def fail_after_first(change, rows):
        if calls:
            raise RuntimeError("worker killed")
        calls.append(rows)
        original(change, rows)

    services._events_insert = fail_after_first
    try:
        with pytest.raises(RuntimeError):
            membership_events_write(change_id=change.pk, chunk=2)
    finally:
        services._events_insert = original
    change.refresh_from_db()
    assert (change.events_written, change.events_done) == (2, False)
    assert membership_events_write(change_id=change.pk, chunk=2) == 1
    assert Event.objects.filter(name="segment_entered", properties__segment="all").count() == 3
    assert sorted(
        Event.objects.filter(name="segment_entered").values_list("customer_id", flat=True)
    ) == sorted(customer.pk for customer in buyers)


def test_new_events_move_just_the_touched_customers_in_dependency_order(
    api,  # noqa: F811
    user_in_role,
    buyers,
    source,
    django_capture_on_commit_callbacks,
):

    from cdp.signals import customers_changed
    from segments.refresh import customers_refresh

    client = api(user_in_role("Marketer"))
    built_on_lapsed = {"and": [{"segment": "lapsed"}, {"trait": "city", "op": "eq", "value": "深圳"}]}
    # Saved first (so it comes first by id), then made to build on "lapsed": the refresh must still
    # do "lapsed" before it.
    for key, rule in (
        ("lapsed-shenzhen", {"trait": "city", "op": "eq", "value": "深圳"}),
        ("lapsed", LAPSED),
        ("lapsed-shenzhen", built_on_lapsed),
    ):
        response = client.post(
            "/api/segments/", {"key": key, "name": key, "rule": rule}, content_type="application/json"
        )
        assert response.status_code == 201, response.json()
    assert Segment.objects.get(key="lapsed-shenzhen").member_count == 2

    seen = []

    def record(sender, customer_ids, **kwargs):
        seen.append(customer_ids)

    customers_changed.connect(record, dispatch_uid="test-record")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            order_ingested(source, buyers[2], "back-again")
    finally:
        customers_changed.disconnect(dispatch_uid="test-record")
    assert seen == [[buyers[2].pk]]  # what the worker's refresh task is queued with

    changes = customers_refresh(customer_ids=seen[0])
    # The segment built on "lapsed" is refreshed after it, so it sees the new membership.
    assert {key: (diff.entered, diff.exited) for key, diff in changes.items()} == {
        "segment:lapsed": (0, 1),
        "segment:lapsed-shenzhen": (0, 1),
    }
    assert Segment.objects.get(key="lapsed").member_count == 1
    assert customers_refresh(customer_ids=seen[0]) == {}  # nothing left to change
    membership_events_pending()
    assert Event.objects.filter(name="segment_exited", customer=buyers[2]).count() == 2


def test_refresh_requests_survive_a_lost_task_and_a_burst_becomes_one_change(
    api,  # noqa: F811
    user_in_role,
    buyers,
    source,
    monkeypatch,
    django_capture_on_commit_callbacks,
):

    from segments.models import RefreshRequest
    from segments.tasks import refresh_requested, rules_tick

    client = api(user_in_role("Marketer"))
    response = client.post(
        "/api/segments/", {"key": "lapsed", "name": "lapsed", "rule": LAPSED}, content_type="application/json"
    )
    assert response.status_code == 201, response.json()
    lapsed = Segment.objects.get(key="lapsed")
    assert set(lapsed.members.values_list("customer_id", flat=True)) == {buyers[1].pk, buyers[2].pk}

    def broker_down():
        raise ConnectionError("broker down")

    monkeypatch.setattr(refresh_requested, "delay", broker_down)
    # Both lapsed buyers order again, each in a request of its own processed in a group of its own;
    # the first orders twice.
    for number, customer in enumerate((buyers[1], buyers[2], buyers[1])):
        with django_capture_on_commit_callbacks(execute=True):
            order_ingested(source, customer, f"again-{number}")

    # No worker was told, yet nothing is lost: one request per customer waits in the database.
    assert sorted(RefreshRequest.objects.values_list("customer_id", flat=True)) == [
        buyers[1].pk,
        buyers[2].pk,
    ]
    assert lapsed.members.count() == 2

    rules_tick()  # beat's minute tick takes what no task took, all at once
    assert not RefreshRequest.objects.exists()
    assert not lapsed.members.exists()
    change = MembershipChange.objects.filter(segment=lapsed).latest("changed_at")
    assert sorted(change.exited) == [buyers[1].pk, buyers[2].pk]  # one change, not one per request
    assert MembershipChange.objects.filter(segment=lapsed).count() == 2  # the save, then this one


def test_deleting_a_segment_deletes_its_members(api, user_in_role, buyers):  # noqa: F811
    client = api(user_in_role("Marketer"))
    response = client.post(
        "/api/segments/", {"key": "lapsed", "name": "lapsed", "rule": LAPSED}, content_type="application/json"
    )
    assert response.status_code == 201, response.json()
    segment = Segment.objects.get(key="lapsed")
    assert SegmentMember.objects.filter(segment_id=segment.pk).count() == 2
    assert client.delete(f"/api/segments/{segment.pk}/").status_code == 204
    # Member rows carry no database foreign key: the delete itself must take them.
    assert not SegmentMember.objects.filter(segment_id=segment.pk).exists()
