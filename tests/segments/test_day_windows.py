"""Rule windows count the company's days (Asia/Shanghai) whatever the hour: at 00:30, when UTC is
still on the day before; in the last minutes of a month; on 29 February and the day after it. The
customers and the rules are the same at every moment, and so are the people selected."""

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from cdp.models import Customer
from cdp.services import source_create
from segments.compiler import rule_customer_ids_sql, rule_customers
from segments.evaluator import facts_load, rule_matches
from segments.rules import rule_parse
from tests.segments.conftest import EDGE_MOMENTS, ORDINARY_MORNING
from tests.segments.test_rule_agreement import store

# Who ordered when: days ago on the company's calendar, at that local hour.
ORDERS = {
    "just_now": (0, 0),  # today, in the first minutes of the day when the clock is at 00:30
    "late_yesterday": (1, 23),  # yesterday 23:xx in Shanghai: the same UTC day as 00:30 today
    "six_days_ago": (6, 12),
    "seven_days_ago": (7, 12),
    "twenty_nine_days_ago": (29, 12),
    "thirty_days_ago": (30, 12),
}

MOMENTS = [pytest.param(ORDINARY_MORNING, id="ordinary-morning"), *EDGE_MOMENTS]


@pytest.fixture
def buyers(db):
    source = source_create(name="ERP server", kind="server")
    people = [
        {
            "traits": {"city": "深圳"},
            "role": None,
            "events": [("Order Completed", days_ago, hour, {"price": 100})],
            "tags": set(),
            "segments": set(),
            "consent": None,
        }
        for days_ago, hour in ORDERS.values()
    ]
    return dict(zip(ORDERS, store(source, people), strict=True))


def selected(buyers, rule_data) -> set[str]:
    """Whom the rule selects today, asserting that the SQL (for everyone and for a few customers)
    and the in-memory evaluator agree."""
    rule = rule_parse(rule_data)
    today = timezone.localdate()
    ids = [customer.pk for customer in buyers.values()]
    in_sql = set(rule_customers(rule, today=today).filter(pk__in=ids).values_list("pk", flat=True))
    in_memory = {
        customer.pk
        for customer in Customer.objects.filter(pk__in=ids)
        if rule_matches(rule, facts_load(customer=customer, rule=rule), today=today)
    }
    with connection.cursor() as cursor:
        cursor.execute(*rule_customer_ids_sql(rule, today=today, among=ids))
        among = {row[0] for row in cursor.fetchall()}
    assert in_sql == in_memory == among, rule_data
    return {name for name, customer in buyers.items() if customer.pk in in_sql}


@pytest.mark.parametrize("clock", MOMENTS, indirect=True)
def test_day_windows_select_the_same_people_at_any_hour(clock, buyers):
    ordered = {"event": "Order Completed"}
    assert selected(buyers, {**ordered, "within_days": 1}) == {"just_now"}
    assert selected(buyers, {**ordered, "within_days": 2}) == {"just_now", "late_yesterday"}
    assert selected(buyers, {**ordered, "within_days": 7}) == {"just_now", "late_yesterday", "six_days_ago"}
    assert selected(buyers, {**ordered, "within_days": 30}) == set(ORDERS) - {"thirty_days_ago"}
    assert selected(buyers, {"and": [ordered, {**ordered, "did": False, "within_days": 30}]}) == {
        "thirty_days_ago"
    }
    last_order_before_29_days_ago = {**ordered, "last_time": {"op": "before", "value": {"days_ago": 29}}}
    assert selected(buyers, last_order_before_29_days_ago) == {"thirty_days_ago"}
    today = timezone.localdate()
    a_month_back = [str(today - dt.timedelta(days=30)), str(today - dt.timedelta(days=29))]
    assert selected(buyers, {**ordered, "between": a_month_back}) == {
        "twenty_nine_days_ago",
        "thirty_days_ago",
    }
