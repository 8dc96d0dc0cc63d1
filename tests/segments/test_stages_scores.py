"""Dynamic tags, lifecycle stages and scores, kept right together: each refreshed after what it
reads, every move an event on the customer's timeline, cycles and deletions of what others use
refused with the names of those who use them."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from cdp.models import Event
from segments.models import CustomerScore, CustomerStage, CustomerTag, RuleClock, ScoreEntry, SegmentMember
from segments.refresh import customers_refresh, edges_cross
from segments.rules import RuleError
from segments.scoring import scores_award, scores_expire, scoring_rule_save
from segments.services import segment_save
from segments.stages import stage_board, stage_delete, stage_save, stages_reorder
from segments.tags import tag_delete, tag_save, tags_merge
from tests.segments.test_rule_agreement import store

ORDERED = {"event": "Order Completed"}


def person(*events, city="深圳"):
    return {
        "traits": {"city": city},
        "role": None,
        "events": list(events),
        "tags": set(),
        "segments": set(),
        "consent": None,
    }


def order(days_ago, price=200):
    return ("Order Completed", days_ago, 12, {"price": price})


def view(days_ago):
    return ("Product Viewed", days_ago, 12, {"category": "数码"})


@pytest.fixture
def people(server_source):
    # a visitor, a buyer, a buyer who also browsed, a stranger who did nothing
    return store(
        server_source, [person(view(1)), person(order(2)), person(view(1), order(5)), person(city="上海")]
    )


def send(source, customer, name, properties=None, moment=None):
    """A new event through the real ingest path; returns the customers it touched."""
    import uuid

    from cdp.ingest import batches_process, inbox_store

    message = {
        "kind": "track",
        "name": name,
        "messageId": str(uuid.uuid4()),
        "userId": customer.identities.get(type="user_id").value,
        "anonymousId": None,
        "timestamp": (moment or timezone.now()).isoformat(),
        "properties": properties or {},
        "context": {},
        "traits": {},
    }
    inbox_store(source=source, enqueue=False, events=[message])
    batches_process()
    return [customer.pk]


def stage_of(customer):
    found = CustomerStage.objects.filter(customer=customer).select_related("stage").first()
    return found.stage.key if found else None


def test_customers_are_in_the_furthest_stage_they_match_and_every_move_is_an_event(
    people, admin_user, server_source
):
    visitor, buyer, browsing_buyer, _stranger = people
    stage_save(key="prospect", name="潜客", rule_data={"event": "Product Viewed"}, actor=admin_user)
    stage_save(key="customer", name="成交客户", rule_data=ORDERED, actor=admin_user)
    assert [stage_of(c) for c in people] == ["prospect", "customer", "customer", None]
    moves = Event.objects.filter(name="stage_changed", customer=browsing_buyer).order_by("pk")
    # placed in prospect by the first stage, then moved on when "customer" was added
    assert [(e.properties["from"], e.properties["to"]) for e in moves] == [
        (None, "prospect"),
        ("prospect", "customer"),
    ]

    board = {column["stage"].key: column for column in stage_board(visible=Q())}
    assert board["prospect"]["count"] == 1 and board["customer"]["count"] == 2
    assert [card.customer_id for card in board["prospect"]["cards"]] == [visitor.pk]

    # the visitor orders: the refresh after new events moves them on
    touched = send(server_source, visitor, "Order Completed")
    customers_refresh(customer_ids=touched)
    assert stage_of(visitor) == "customer"
    assert Event.objects.filter(name="stage_changed", customer=visitor, properties__to="customer").exists()

    # reordering the path moves people at once: "prospect" is now the furthest
    stages_reorder(keys=["customer", "prospect"], actor=admin_user)
    assert stage_of(browsing_buyer) == "prospect" and stage_of(buyer) == "customer"


def test_a_stage_used_by_a_segment_cannot_be_deleted_and_an_unused_one_lets_its_customers_go(
    people, admin_user
):
    stage_save(key="prospect", name="潜客", rule_data={"event": "Product Viewed"}, actor=admin_user)
    customer_stage = stage_save(key="customer", name="成交客户", rule_data=ORDERED, actor=admin_user)
    segment_save(key="buyers", name="买家", rule_data={"stage": "customer"}, actor=admin_user)
    with pytest.raises(ValidationError) as refused:
        stage_delete(stage=customer_stage, actor=admin_user)
    assert "分群“买家”" in str(refused.value)
    assert CustomerStage.objects.filter(stage=customer_stage).count() == 2

    segment_save(key="buyers", name="买家", rule_data=ORDERED, actor=admin_user)
    assert stage_delete(stage=customer_stage, actor=admin_user) == 2
    # the browsing buyer falls back to the stage they still match; the plain buyer to none
    assert [stage_of(c) for c in people] == ["prospect", None, "prospect", None]


def test_a_dynamic_tag_follows_its_rule_and_a_segment_built_on_it_follows_the_tag(
    people, admin_user, server_source
):
    visitor, _buyer, browsing_buyer, stranger = people
    hot = tag_save(
        key="hot", name="高意向", rule_data={"event": "Product Viewed", "within_days": 7}, actor=admin_user
    )
    assert set(CustomerTag.objects.filter(tag=hot).values_list("customer_id", flat=True)) == {
        visitor.pk,
        browsing_buyer.pk,
    }
    assert Event.objects.get(name="tag_added", customer=visitor).properties["origin"] == "rule"
    segment_save(
        key="hot-shanghai",
        name="上海高意向",
        rule_data={"and": [{"tag": "hot"}, {"trait": "city", "op": "eq", "value": "上海"}]},
        actor=admin_user,
    )
    assert not SegmentMember.objects.filter(segment__key="hot-shanghai").exists()

    # the stranger from Shanghai views a product: tag first, then the segment that reads it
    changes = customers_refresh(customer_ids=send(server_source, stranger, "Product Viewed"))
    assert {node: (diff.entered, diff.exited) for node, diff in changes.items()} == {
        "tag:hot": (1, 0),
        "segment:hot-shanghai": (1, 0),
    }
    assert list(
        SegmentMember.objects.filter(segment__key="hot-shanghai").values_list("customer_id", flat=True)
    ) == [stranger.pk]


def test_a_rule_that_would_refer_back_to_itself_is_refused_with_the_path(people, admin_user):
    tag_save(key="hot", name="高意向", rule_data={"event": "Product Viewed"}, actor=admin_user)
    segment_save(
        key="hot-buyers", name="高意向买家", rule_data={"and": [{"tag": "hot"}, ORDERED]}, actor=admin_user
    )
    stage_save(key="warm", name="升温", rule_data={"segment": "hot-buyers"}, actor=admin_user)
    with pytest.raises(RuleError) as refused:
        segment_save(key="hot-buyers", name="高意向买家", rule_data={"stage": "warm"}, actor=admin_user)
    assert refused.value.problems == [
        {"path": "$", "message": "refers back to itself: segment:hot-buyers → stage → segment:hot-buyers"}
    ]


def test_tags_used_by_rules_are_not_deleted_and_merging_moves_holders_with_events(people, admin_user):
    from segments.tags import customers_tag

    visitor, buyer, _browsing_buyer, stranger = people
    wechat = tag_save(key="wechat", name="微信", actor=admin_user)
    web = tag_save(key="web", name="网站", actor=admin_user)
    customers_tag(customer_ids=[visitor.pk, buyer.pk], tag=wechat, actor=admin_user)
    customers_tag(customer_ids=[buyer.pk, stranger.pk], tag=web, actor=admin_user)
    segment_save(key="web-people", name="网站来的", rule_data={"tag": "web"}, actor=admin_user)
    with pytest.raises(ValidationError) as refused:
        tags_merge(source=web, into=wechat, actor=admin_user)
    assert "分群“网站来的”" in str(refused.value)

    segment_save(key="web-people", name="网站来的", rule_data={"tag": "wechat"}, actor=admin_user)
    assert tags_merge(source=web, into=wechat, actor=admin_user) == 1  # only the stranger is new
    assert set(CustomerTag.objects.filter(tag=wechat).values_list("customer_id", flat=True)) == {
        visitor.pk,
        buyer.pk,
        stranger.pk,
    }
    assert Event.objects.filter(name="tag_removed", properties__tag="web").count() == 2
    with pytest.raises(ValidationError):
        tag_delete(tag=wechat, actor=admin_user)


def test_points_are_awarded_once_within_the_cap_and_lapse(people, admin_user, server_source):
    visitor, _buyer, _browsing_buyer, _stranger = people
    scoring_rule_save(
        name="大额订单",
        event="Order Completed",
        where=[{"property": "price", "op": "gt", "value": 100}],
        points=10,
        cap=15,
        cap_period="day",
        expires_after_days=30,
        actor=admin_user,
    )
    segment_save(
        key="engaged", name="高分", rule_data={"score": {"op": "gte", "value": 15}}, actor=admin_user
    )
    moment = timezone.now()
    for price in (500, 50, 300, 900):  # the 50 earns nothing; the third big one is over the cap
        send(server_source, visitor, "Order Completed", {"price": price}, moment=moment)
    assert scores_award(customer_ids=[visitor.pk]) == {visitor.pk}
    assert scores_award(customer_ids=[visitor.pk]) == set()  # each event is scored once
    assert sorted(ScoreEntry.objects.filter(customer=visitor).values_list("points", flat=True)) == [5, 10]
    assert CustomerScore.objects.get(customer=visitor).points == 15
    customers_refresh(customer_ids=[visitor.pk])
    assert SegmentMember.objects.filter(segment__key="engaged", customer=visitor).exists()

    # thirty days on, the points lapse: found by the tick, not by looking at everyone
    RuleClock.objects.update(expired_until=moment)
    assert scores_expire(now=moment + dt.timedelta(days=31)) == {visitor.pk}
    assert CustomerScore.objects.get(customer=visitor).points == 0


def test_bad_scoring_rules_are_refused_field_by_field(people, admin_user):
    with pytest.raises(ValidationError) as refused:
        scoring_rule_save(
            name="",
            event="Order Complete",
            where=[{"property": "price", "op": "gt"}],
            points=0,
            cap=-1,
            actor=admin_user,
        )
    errors = refused.value.message_dict
    assert set(errors) == {"name", "event", "where", "points", "cap"}
    assert "Order Completed" in errors["event"][0]
    assert errors["where"][0].startswith("where[0]")


def test_customers_who_cross_a_window_edge_are_found_on_the_day_they_cross_it(people, admin_user):
    _visitor, buyer, browsing_buyer, _stranger = people
    segment_save(
        key="no-order-3d",
        name="3 天未下单的买家",
        rule_data={"and": [ORDERED, {"event": "Order Completed", "did": False, "within_days": 3}]},
        actor=admin_user,
    )
    # the buyer ordered 2 days ago; browsing buyer 5 days ago
    assert set(
        SegmentMember.objects.filter(segment__key="no-order-3d").values_list("customer_id", flat=True)
    ) == {browsing_buyer.pk}
    today = timezone.localdate()
    RuleClock.objects.all().delete()
    RuleClock.objects.create(expired_until=timezone.now(), edges_day=today)
    assert edges_cross(today=today) == 0  # nothing to do twice on a day
    looked_at = edges_cross(today=today + dt.timedelta(days=1))
    assert looked_at < len(people)  # the edge's customers, not everyone
    assert set(
        SegmentMember.objects.filter(segment__key="no-order-3d").values_list("customer_id", flat=True)
    ) == {
        browsing_buyer.pk,
        buyer.pk,
    }


def test_tags_and_score_entries_follow_a_merge_and_score_entries_its_undoing(
    people, admin_user, server_source
):
    from cdp.merge import customers_merge_by_hand, customers_unmerge
    from segments.tags import customers_tag

    visitor, buyer, _browsing_buyer, _stranger = people
    scoring_rule_save(name="下单", event="Order Completed", points=10, actor=admin_user)
    send(server_source, buyer, "Order Completed")
    scores_award(customer_ids=[buyer.pk])
    vip, web = (
        tag_save(key="vip", name="VIP", actor=admin_user),
        tag_save(key="web", name="网站", actor=admin_user),
    )
    customers_tag(customer_ids=[visitor.pk], tag=vip, actor=admin_user)
    customers_tag(customer_ids=[visitor.pk, buyer.pk], tag=web, actor=admin_user)

    stage_save(key="customer", name="成交客户", rule_data=ORDERED, actor=admin_user)
    assert CustomerStage.objects.filter(customer=buyer).exists()
    log = customers_merge_by_hand(customer=visitor, other=buyer, actor=admin_user)
    survivor, merged = log.survivor_id, log.merged_id
    customers_refresh(customer_ids=[survivor, merged])  # what the merge queues
    # the survivor now holds the order, so the stage; the merged-away profile holds nothing
    assert CustomerStage.objects.get(customer_id=survivor).stage.key == "customer"
    assert not CustomerStage.objects.filter(customer_id=merged).exists()
    assert set(CustomerTag.objects.filter(customer_id=survivor).values_list("tag__key", flat=True)) >= {
        "vip",
        "web",
    }
    assert not CustomerTag.objects.filter(customer_id=merged).exists()
    assert CustomerScore.objects.get(customer_id=survivor).points == 10
    assert CustomerScore.objects.get(customer_id=merged).points == 0

    customers_unmerge(log=log, actor=admin_user)
    # the order went back to the customer it came with, and so did its points
    assert CustomerScore.objects.get(customer_id=buyer.pk).points == 10
    assert CustomerScore.objects.get(customer_id=visitor.pk).points == 0
