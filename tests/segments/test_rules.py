"""The rule language as marketers use it: the documented examples select the right people, and
mistakes come back with their JSON path and the closest real names."""

import datetime as dt

import pytest
from django.utils import timezone

from cdp.models import CustomerRole
from segments.compiler import rule_customers
from segments.models import CustomerTag, Tag
from segments.rules import RuleError, rule_parse
from segments.services import rule_validate
from tests.segments.test_rule_agreement import store


def person(name_days=(), traits=None, role=None, tags=()):
    return {
        "traits": traits or {},
        "role": role,
        "events": [(name, days, 12, properties) for name, days, properties in name_days],
        "tags": set(),
        "segments": set(),
        "consent": None,
        "_tags": tags,
    }


@pytest.fixture
def shoppers(server_source):
    people = {
        "loyal": person([("Order Completed", 3, {}), ("page_viewed", 1, {})]),
        "lapsed": person([("Order Completed", 45, {}), ("page_viewed", 40, {})]),
        "browser": person([("Product Viewed", day, {"category": "美妆"}) for day in (1, 5, 9)]),
        "browser_buyer": person(
            [("Product Viewed", day, {"category": "美妆"}) for day in (1, 5, 9)]
            + [("Order Completed", 2, {})]
        ),
        "wrong_category": person([("Product Viewed", day, {"category": "数码"}) for day in (1, 5, 9)]),
        "smart_home_supplier": person(traits={"industry": "智能家居"}, role="supplier"),
        "smart_home_buyer": person(traits={"industry": "智能家居"}, role="buyer"),
        "tagged": person(tags=("new-customer", "online")),
        "half_tagged": person(tags=("online",)),
    }
    customers = dict(zip(people, store(server_source, list(people.values())), strict=True))
    for key in ("new-customer", "online"):
        Tag.objects.get_or_create(key=key, defaults={"name": key})
    for name, data in people.items():
        for key in data["_tags"]:
            CustomerTag.objects.create(customer=customers[name], tag=Tag.objects.get(key=key))
    return customers


def selected(shoppers, rule) -> set[str]:
    ids = set(rule_customers(rule_parse(rule), today=timezone.localdate()).values_list("pk", flat=True))
    return {name for name, customer in shoppers.items() if customer.pk in ids}


def test_the_documented_examples_select_the_right_people(shoppers):
    assert selected(
        shoppers,
        {
            "and": [
                {"event": "Order Completed"},
                {"event": "Order Completed", "did": False, "within_days": 30},
            ]
        },
    ) == {"lapsed"}
    no_interaction = {
        "not": {
            "or": [
                {"event": "page_viewed", "within_days": 30},
                {"event": "Order Completed", "within_days": 30},
            ]
        }
    }
    assert selected(shoppers, no_interaction) == set(shoppers) - {"loyal", "browser_buyer"}
    assert selected(
        shoppers,
        {
            "and": [
                {
                    "event": "Product Viewed",
                    "where": [{"property": "category", "op": "eq", "value": "美妆"}],
                    "count": {"op": "gte", "value": 3},
                    "within_days": 14,
                },
                {"event": "Order Completed", "did": False, "within_days": 14},
            ]
        },
    ) == {"browser"}
    assert selected(
        shoppers, {"and": [{"role": "supplier"}, {"trait": "industry", "op": "eq", "value": "智能家居"}]}
    ) == {"smart_home_supplier"}
    assert selected(shoppers, {"and": [{"tag": "new-customer"}, {"tag": "online"}]}) == {"tagged"}
    first_this_week = {"event": "Order Completed", "first_time": {"op": "within_last_days", "value": 7}}
    assert selected(shoppers, first_this_week) == {"loyal", "browser_buyer"}


def test_mistakes_come_back_with_their_path(db):
    with pytest.raises(RuleError) as error:
        rule_parse(
            {
                "and": [
                    {"trait": "city", "op": "between", "value": 3},
                    {"event": "Order Completed", "count": {"op": "gte", "value": -1}},
                    {"segmnt": "vip"},
                    {"not": {"event": "X", "within_days": 7, "between": ["2026-01-01", "2026-01-02"]}},
                ]
            }
        )
    paths = {problem["path"]: problem["message"] for problem in error.value.problems}
    assert set(paths) == {"$.and[0]", "$.and[1].count.value", "$.and[2]", "$.and[3].not"}
    assert "between" in paths["$.and[0]"]
    assert "exactly one of" in paths["$.and[2]"]


def test_unknown_names_are_refused_with_the_closest_real_ones(shoppers):
    CustomerRole.objects.get_or_create(key="supplier", defaults={"label": "供应商"})
    with pytest.raises(RuleError) as error:
        rule_validate(
            {
                "or": [
                    {"event": "Order Complete"},
                    {"trait": "industy", "op": "exists"},
                    {"tag": "onlin"},
                    {"role": "suplier"},
                    {"event": "Product Viewed"},
                ]
            }
        )
    messages = {problem["path"]: problem["message"] for problem in error.value.problems}
    assert messages == {
        "$.or[0].event": "no event is called “Order Complete”; did you mean “Order Completed”?",
        "$.or[1].trait": "no trait is called “industy”; did you mean “industry”?",
        "$.or[2].tag": "no tag is called “onlin”; did you mean “online”?",
        "$.or[3].role": "no role is called “suplier”; did you mean “supplier”?",
    }
    assert rule_validate({"event": "Product Viewed", "within_days": 7}).within_days == 7


def test_relative_dates_move_with_today(shoppers):
    rule = rule_parse({"event": "Order Completed", "last_time": {"op": "before", "value": {"days_ago": 30}}})
    today = timezone.localdate()
    assert {c.pk for c in rule_customers(rule, today=today)} == {shoppers["lapsed"].pk}
    later = today + dt.timedelta(days=30)
    assert {c.pk for c in rule_customers(rule, today=later)} == {
        shoppers["lapsed"].pk,
        shoppers["loyal"].pk,
        shoppers["browser_buyer"].pk,
    }
