"""The demo company's rules: tag groups and dynamic tags, segments, a lifecycle path and scoring
rules over the demo customers' 90 days of events, so every page has something true to show. Loaded
once, after the customers (running it again changes nothing)."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from cdp.models import Customer
from segments.models import LifecycleStage, ScoringRule, Segment, Tag, TagGroup
from segments.scoring import scores_award, scoring_rule_save
from segments.services import segment_save
from segments.stages import stage_save
from segments.tags import tag_group_save, tag_save

ORDERED = {"event": "Order Completed"}

DYNAMIC_TAGS = [
    ("new-customer", "新客", {"event": "Signed Up", "first_time": {"op": "within_last_days", "value": 30}}),
    ("online", "线上活跃", {"event": "Product Viewed", "within_days": 14}),
    (
        "high-intent",
        "高意向",
        {
            "and": [
                {"event": "Product Viewed", "count": {"op": "gte", "value": 3}, "within_days": 14},
                {"event": "Order Completed", "did": False, "within_days": 14},
            ]
        },
    ),
]
SEGMENTS = [
    (
        "lapsed-30d",
        "30 天未下单",
        {"and": [ORDERED, {"event": "Order Completed", "did": False, "within_days": 30}]},
    ),
    (
        "smart-home-suppliers",
        "智能家居供应商",
        {
            "and": [
                {"trait": "role", "op": "in", "value": ["supplier", "both"]},
                {"trait": "industry", "op": "eq", "value": "智能家居"},
            ]
        },
    ),
    ("engaged", "高分客户", {"score": {"op": "gte", "value": 40}}),
]
STAGES = [
    ("prospect", "潜客", "#94a3b8", {"or": [{"event": "Signed Up"}, {"event": "Product Viewed"}]}),
    ("nurturing", "培育中", "#f59e0b", {"and": [{"tag": "new-customer"}, {"tag": "online"}]}),
    ("customer", "成交客户", "#2563eb", ORDERED),
    (
        "loyal",
        "忠诚客户",
        "#16a34a",
        {"event": "Order Completed", "count": {"op": "gte", "value": 3}, "within_days": 90},
    ),
]
SCORING = [
    {
        "name": "浏览商品",
        "event": "Product Viewed",
        "points": 1,
        "cap": 5,
        "cap_period": "day",
        "expires_after_days": 30,
    },
    {"name": "提交表单", "event": "Form Submitted", "points": 10, "expires_after_days": 90},
    {
        "name": "大额订单",
        "event": "Order Completed",
        "where": [{"property": "revenue", "op": "gte", "value": 500}],
        "points": 30,
        "expires_after_days": 180,
    },
    {
        "name": "下单",
        "event": "Order Completed",
        "points": 10,
        "cap": 30,
        "cap_period": "month",
        "expires_after_days": 180,
    },
]
SCORE_CHUNK = 2_000


def demo_rules_load() -> bool:
    """Creates the demo rules unless they exist; returns whether it created them."""
    if LifecycleStage.objects.exists() or Segment.objects.exists():
        return False
    admin = get_user_model().objects.filter(username="admin").first()
    group = TagGroup.objects.filter(name="行为").first() or tag_group_save(
        name="行为", color="#7c3aed", actor=admin
    )
    for key, name, rule in DYNAMIC_TAGS:
        if not Tag.objects.filter(key=key).exists():
            tag_save(key=key, name=name, group=group, rule_data=rule, actor=admin)
    # The demo's events are all stored already: these rules count them (a real rule counts only
    # what comes after it).
    for values in SCORING:
        rule = scoring_rule_save(actor=admin, **values)
        ScoringRule.objects.filter(pk=rule.pk).update(counts_after_event_id=0)
    customer_ids = list(Customer.objects.filter(merged_into=None).order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(customer_ids), SCORE_CHUNK):
        scores_award(customer_ids=customer_ids[start : start + SCORE_CHUNK])
    for key, name, rule in SEGMENTS:
        segment_save(key=key, name=name, rule_data=rule, actor=admin)
    for key, name, color, rule in STAGES:
        stage_save(key=key, name=name, color=color, rule_data=rule, actor=admin)
    return True
