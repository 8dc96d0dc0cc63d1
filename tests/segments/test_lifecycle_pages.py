"""The lifecycle pages as marketers and sales use them: stages drawn as a kanban with the customers
in each, stage and scoring rules defined on forms that say what is wrong where, and the stage, score
and ledger on the profile."""

import pytest
from django.urls import reverse

from segments.models import CustomerStage, LifecycleStage, ScoringRule
from segments.scoring import scores_award
from segments.services import segment_save
from segments.stages import stage_save
from tests.segments.test_rule_agreement import store
from tests.segments.test_segment_pages import builder_config_of
from tests.segments.test_stages_scores import order, person, send, view

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


@pytest.fixture
def people(source):
    return store(source, [person(view(1)), person(order(2)), person(view(1), order(5))])


def test_marketers_add_stages_and_the_kanban_shows_who_is_where(client, user_in_role, people):
    visitor, buyer, browsing_buyer = people
    client.force_login(user_in_role("Marketer"))
    empty = client.get(reverse("lifecycle"), **EN).content.decode()
    assert "No lifecycle stages yet" in empty

    response = client.post(
        reverse("lifecycle_stage_new"),
        {"name": "Prospect", "key": "prospect", "color": "#64748b", "rule": '{"event": "Product Viewed"}'},
        **EN,
    )
    assert response.status_code == 302
    client.post(
        reverse("lifecycle_stage_new"),
        {"name": "Customer", "key": "customer", "color": "#16a34a", "rule": '{"event": "Order Completed"}'},
        **EN,
    )
    page = client.get(reverse("lifecycle"), **EN).content.decode()
    prospect_column = page[page.index('id="stage-') : page.index("Customer</h2>")]
    assert f'href="{reverse("customer", args=[visitor.pk])}"' in prospect_column
    assert f'href="{reverse("customer", args=[buyer.pk])}"' not in prospect_column
    assert '<span class="kanban__count">1</span>' in page and '<span class="kanban__count">2</span>' in page

    # moving "Customer" before "Prospect" makes "Prospect" the furthest: the browsing buyer moves
    customer_stage = LifecycleStage.objects.get(key="customer")
    client.post(reverse("lifecycle_stage_move", args=[customer_stage.pk]), {"direction": "up"})
    assert CustomerStage.objects.get(customer=browsing_buyer).stage.key == "prospect"


def test_a_bad_stage_rule_is_shown_where_it_is_wrong_and_nothing_is_saved(client, user_in_role, people):
    client.force_login(user_in_role("Marketer"))
    response = client.post(
        reverse("lifecycle_stage_new"),
        {
            "name": "Loyal",
            "key": "loyal",
            "color": "#16a34a",
            "rule": '{"event": "Order Complete", "count": {"value": -1}}',
        },
        **EN,
    )
    assert response.status_code == 400
    # the rule builder shows each problem at its condition
    assert [problem["path"] for problem in builder_config_of(response)["problems"]] == [
        "$.count.value",
        "$.event",
    ]
    assert "Fix the marked conditions of the rule." in response.content.decode()
    response = client.post(
        reverse("lifecycle_stage_new"),
        {"name": "Loyal", "key": "loyal", "color": "#16a34a", "rule": '{"event": "Order Complete"}'},
        **EN,
    )
    (problem,) = builder_config_of(response)["problems"]
    assert problem["path"] == "$.event" and "did you mean “Order Completed”" in problem["message"]
    response = client.post(
        reverse("lifecycle_stage_new"),
        {"name": "Loyal", "key": "loyal", "color": "#16a34a", "rule": "{oops"},
        **EN,
    )
    assert "This is not valid JSON" in response.content.decode()
    assert not LifecycleStage.objects.exists()


def test_a_stage_that_a_segment_reads_shows_who_uses_it_instead_of_a_delete_button(
    client, user_in_role, people, admin_user
):
    stage = stage_save(
        key="customer", name="Customer", rule_data={"event": "Order Completed"}, actor=admin_user
    )
    segment_save(key="buyers", name="Buyers", rule_data={"stage": "customer"}, actor=admin_user)
    client.force_login(user_in_role("Marketer"))
    page = client.get(reverse("lifecycle_stage", args=[stage.pk]), **EN).content.decode()
    assert "segment “Buyers”" in page and "Delete stage" not in page
    response = client.post(reverse("lifecycle_stage_delete", args=[stage.pk]), follow=True, **EN)
    assert "is used by segment “Buyers”" in response.content.decode()
    assert LifecycleStage.objects.filter(pk=stage.pk).exists()


def test_scoring_rules_are_added_on_the_page_and_the_profile_shows_score_stage_and_ledger(
    client, user_in_role, people, admin_user, source
):
    visitor, _buyer, _browsing_buyer = people
    client.force_login(user_in_role("Marketer"))
    response = client.post(
        reverse("scoring"),
        {
            "name": "",
            "event": "Order Complete",
            "where": '[{"property": "price"}]',
            "points": "0",
            "cap_period": "day",
        },
        **EN,
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "Give the rule a name." in body and "did you mean" in body and "where[0]" in body
    assert not ScoringRule.objects.exists()

    response = client.post(
        reverse("scoring"),
        {
            "name": "Big order",
            "event": "Order Completed",
            "where": '[{"property": "price", "op": "gte", "value": 100}]',
            "points": "10",
            "cap": "30",
            "cap_period": "day",
            "expires_after_days": "90",
        },
        **EN,
    )
    assert response.status_code == 302
    stage_save(key="customer", name="Customer", rule_data={"event": "Order Completed"}, actor=admin_user)
    send(source, visitor, "Order Completed", {"price": 300})
    scores_award(customer_ids=[visitor.pk])

    client.force_login(user_in_role("Sales"))
    page = client.get(reverse("customer", args=[visitor.pk]), **EN).content.decode()
    assert "Score: 10" in page and "Big order" in page and "+10" in page
    assert "Stage: Customer" not in page  # the stage follows the refresh after new events
    from segments.refresh import customers_refresh

    customers_refresh(customer_ids=[visitor.pk])
    page = client.get(reverse("customer", args=[visitor.pk]), **EN).content.decode()
    assert "Stage: Customer" in page
    scoring_page = client.get(reverse("scoring"), **EN).content.decode()
    assert "Big order" in scoring_page and "Add a scoring rule" not in scoring_page  # sales only look
    assert client.post(reverse("scoring"), {"name": "x"}).status_code == 403


def test_sales_adjust_a_score_by_hand_with_a_reason_and_segments_follow(
    client, user_in_role, people, admin_user
):
    from cdp.models import AuditEntry
    from segments.models import ScoreEntry, SegmentMember
    from segments.refresh import refresh_requests_take

    visitor = people[0]
    warm = segment_save(
        key="warm", name="Warm", rule_data={"score": {"op": "gte", "value": 20}}, actor=admin_user
    )
    seller = user_in_role("Sales")
    client.force_login(seller)
    url = reverse("customer_score", args=[visitor.pk])
    page = client.post(url, {"points": "0", "reason": " "}, follow=True, **EN).content.decode()
    assert "Points: Zero points change nothing" in page and "Reason: Say why" in page
    page = client.post(url, {"points": "lots", "reason": "x"}, follow=True, **EN).content.decode()
    assert "Points: Enter a whole number from -10000 to 10000." in page
    assert not ScoreEntry.objects.filter(customer=visitor).exists()

    page = client.post(
        url, {"points": "25", "reason": "Met us at the trade fair", "lapse_days": "30"}, follow=True, **EN
    ).content.decode()
    assert "Score adjusted by +25." in page and "Score: 25" in page
    assert "by hand" in page and "Met us at the trade fair" in page
    assert AuditEntry.objects.filter(action="score.adjust", actor=seller).exists()

    refresh_requests_take()  # what the woken worker does
    assert SegmentMember.objects.filter(segment=warm, customer=visitor).exists()

    analyst = user_in_role("Analyst")
    client.force_login(analyst)
    assert (
        "Adjust the score by hand"
        not in client.get(reverse("customer", args=[visitor.pk]), **EN).content.decode()
    )
    assert client.post(url, {"points": "5", "reason": "x"}).status_code == 403
