"""Tags, stages and scoring through the API, as a back-office system or a script would use them."""

import pytest

from cdp.models import Event
from segments.models import CustomerStage, CustomerTag, Tag
from segments.scoring import scores_award
from segments.services import segment_save
from tests.cdp.test_open_api import api  # noqa: F401 (fixture)
from tests.segments.test_rule_agreement import store
from tests.segments.test_stages_scores import order, person, send, view


@pytest.fixture
def people(source):
    return store(source, [person(view(1)), person(order(2)), person(view(1), order(5))])


def test_tags_are_made_set_in_bulk_and_refused_deletion_while_a_rule_reads_them(
    api,  # noqa: F811
    user_in_role,
    people,
    admin_user,
):
    client = api(user_in_role("Marketer"))
    bad = client.post(
        "/api/tags/",
        {"key": "hot", "name": "高意向", "rule": {"event": "Product Viewd", "within_days": 0}},
        content_type="application/json",
    )
    assert bad.status_code == 400
    problems = {problem["path"]: problem["message"] for problem in bad.json()["errors"]}
    assert set(problems) == {"$.within_days", "$.event"}  # every mistake at once
    assert "did you mean “Product Viewed”" in problems["$.event"]
    assert not Tag.objects.filter(key="hot").exists()

    made = client.post(
        "/api/tags/",
        {"key": "hot", "name": "高意向", "rule": {"event": "Product Viewed", "within_days": 7}},
        content_type="application/json",
    )
    assert made.status_code == 201 and made.json()["holder_count"] == 2 and made.json()["kind"] == "dynamic"
    assert (
        client.post("/api/tags/", {"key": "vip", "name": "VIP"}, content_type="application/json").status_code
        == 201
    )

    segment_save(key="buyers", name="买家", rule_data={"event": "Order Completed"}, actor=admin_user)
    bulk = client.post("/api/tags/vip/customers/", {"segment": "buyers"}, content_type="application/json")
    assert bulk.json() == {"changed": 2, "unknown_ids": []}
    assert Event.objects.filter(name="tag_added", properties__tag="vip").count() == 2
    by_id = client.post(
        "/api/tags/vip/customers/",
        {"customer_ids": [people[0].pk, 999_999_999], "action": "add"},
        content_type="application/json",
    )
    assert by_id.json() == {"changed": 1, "unknown_ids": [999_999_999]}
    assert CustomerTag.objects.filter(tag__key="vip").count() == 3
    # a dynamic tag is not set by hand
    hand = client.post(
        "/api/tags/hot/customers/", {"customer_ids": [people[1].pk]}, content_type="application/json"
    )
    assert hand.status_code == 400

    segment_save(key="vips", name="VIP 客户", rule_data={"tag": "vip"}, actor=admin_user)
    refused = client.delete("/api/tags/vip/")
    assert refused.status_code == 409 and "VIP 客户" in str(refused.json())
    assert CustomerTag.objects.filter(tag__key="vip").count() == 3


def test_stages_and_scoring_rules_through_the_api_and_one_customers_lifecycle(
    api,  # noqa: F811
    user_in_role,
    people,
    source,
):
    visitor, _buyer, browsing_buyer = people
    client = api(user_in_role("Marketer"))
    for key, rule in (("prospect", {"event": "Product Viewed"}), ("customer", {"event": "Order Completed"})):
        response = client.post(
            "/api/stages/", {"key": key, "name": key.title(), "rule": rule}, content_type="application/json"
        )
        assert response.status_code == 201, response.json()
    assert [(s["key"], s["customer_count"]) for s in client.get("/api/stages/").json()] == [
        ("prospect", 1),
        ("customer", 2),
    ]
    reordered = client.post(
        "/api/stages/order/", {"keys": ["customer", "prospect"]}, content_type="application/json"
    )
    assert [s["key"] for s in reordered.json()] == ["customer", "prospect"]
    assert CustomerStage.objects.get(customer=browsing_buyer).stage.key == "prospect"
    assert (
        client.post("/api/stages/order/", {"keys": ["customer"]}, content_type="application/json").status_code
        == 400
    )

    rule = client.post(
        "/api/scoring-rules/",
        {"name": "下单", "event": "Order Completed", "points": 20, "expires_after_days": 90},
        content_type="application/json",
    )
    assert rule.status_code == 201, rule.json()
    refused = client.post(
        "/api/scoring-rules/", {"name": "", "event": "Nope", "points": 0}, content_type="application/json"
    )
    assert refused.status_code == 400 and set(refused.json()) == {"name", "event", "points"}

    send(source, visitor, "Order Completed")
    scores_award(customer_ids=[visitor.pk])
    lifecycle = client.get(f"/api/customers/{visitor.pk}/lifecycle/").json()
    assert lifecycle["score"] == 20 and lifecycle["stage"] == "prospect"
    assert [(entry["rule"], entry["points"]) for entry in lifecycle["ledger"]] == [("下单", 20)]


def test_the_schema_describes_tags_stages_and_scoring(client, user_in_role):
    client.force_login(user_in_role("Admin"))
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path in (
        "/api/tags/",
        "/api/tags/{key}/customers/",
        "/api/stages/",
        "/api/scoring-rules/",
        "/api/customers/{customer_id}/lifecycle/",
        "/api/customers/{customer_id}/score-adjustments/",
    ):
        assert path in schema["paths"], path


def test_a_segment_is_deleted_over_the_api_unless_a_rule_reads_it(api, user_in_role, people, admin_user):  # noqa: F811
    client = api(user_in_role("Marketer"))
    lapsed = segment_save(key="buyers", name="买家", rule_data={"event": "Order Completed"}, actor=admin_user)
    segment_save(key="buyers-again", name="复购", rule_data={"segment": "buyers"}, actor=admin_user)
    refused = client.delete(f"/api/segments/{lapsed.pk}/")
    assert refused.status_code == 409 and "复购" in str(refused.json())
    assert client.get(f"/api/segments/{lapsed.pk}/").json()["member_count"] == 2
    again = client.get("/api/segments/").json()
    client.delete(f"/api/segments/{next(s['id'] for s in again if s['key'] == 'buyers-again')}/")
    assert client.delete(f"/api/segments/{lapsed.pk}/").status_code == 204
    assert client.get(f"/api/segments/{lapsed.pk}/").status_code == 404


def test_a_back_office_system_adjusts_a_score_with_a_reason(api, user_in_role, people):  # noqa: F811
    visitor = people[0]
    client = api(user_in_role("Sales"))
    url = f"/api/customers/{visitor.pk}/score-adjustments/"
    zero = client.post(url, {"points": 0, "reason": "none"}, content_type="application/json")
    assert zero.status_code == 400 and list(zero.json()) == ["points"]
    no_reason = client.post(url, {"points": 5}, content_type="application/json")
    assert no_reason.status_code == 400 and "reason" in no_reason.json()
    too_long = client.post(
        url, {"points": 5, "reason": "x", "lapse_days": 0}, content_type="application/json"
    )
    assert too_long.status_code == 400 and list(too_long.json()) == ["lapse_days"]

    given = client.post(
        url, {"points": 30, "reason": "签约意向强", "lapse_days": 60}, content_type="application/json"
    )
    assert given.status_code == 201, given.json()
    taken = client.post(url, {"points": -5, "reason": "投诉未解决"}, content_type="application/json")
    assert taken.status_code == 201

    lifecycle = client.get(f"/api/customers/{visitor.pk}/lifecycle/").json()
    assert lifecycle["score"] == 25
    assert [(entry["points"], entry["reason"], entry["rule"]) for entry in lifecycle["ledger"]] == [
        (-5, "投诉未解决", ""),
        (30, "签约意向强", ""),
    ]
    assert {entry["adjusted_by"] for entry in lifecycle["ledger"]} == {given.wsgi_request.user.username}
    assert api(user_in_role("Analyst")).post(url, {"points": 1, "reason": "x"}).status_code == 403
