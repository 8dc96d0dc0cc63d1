"""The SQL compiler and the in-memory evaluator agree on random rules over random customers whose
data went through the real ingest path (so the rollups are the real ones)."""

import datetime as dt
import uuid

from django.db import connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cdp.ingest import batches_process, inbox_store
from cdp.models import Customer, Identity
from cdp.services import consent_record
from segments.compiler import rule_customer_ids_sql, rule_customers
from segments.evaluator import facts_load, rule_matches
from segments.models import (
    CustomerScore,
    CustomerStage,
    CustomerTag,
    LifecycleStage,
    Segment,
    SegmentMember,
    Tag,
)
from segments.rules import RuleError, rule_parse

EVENTS = ["Order Completed", "Product Viewed", "page_viewed"]
DATES = ["2026-11-20", "2026-11-24T09:00:00+08:00", "2026-02-30", "2025-01-01", "soon", "2026-10-01"]
texts = st.sampled_from(["深圳", "上海", "shanghai", "Shanghai", "", "a", "b", "30"])
numbers = st.integers(-5, 120) | st.sampled_from([0.5, 29.99, 30.0, 1e3])
scalars = texts | numbers | st.booleans()
trait_values = scalars | st.none() | st.sampled_from(DATES) | st.lists(texts | numbers, max_size=3)

person = st.fixed_dictionaries(
    {
        "traits": st.dictionaries(
            st.sampled_from(["city", "age", "vip", "signup", "interests"]), trait_values, max_size=4
        ),
        "role": st.sampled_from([None, "supplier", "supplier buyer", "Buyer", ["agent", "supplier"]]),
        "events": st.lists(
            st.tuples(
                st.sampled_from(EVENTS),
                st.integers(-1, 45),  # days ago
                st.integers(0, 23),
                st.fixed_dictionaries(
                    {},
                    optional={
                        "category": st.sampled_from(["美妆", "数码", "母婴"]),
                        "price": st.integers(0, 500) | st.sampled_from(["99", 12.5]),
                    },
                ),
            ),
            max_size=6,
        ),
        "tags": st.sets(st.sampled_from(["new", "online"])),
        "segments": st.sets(st.sampled_from(["vip"])),
        "consent": st.sampled_from([None, "subscribed", "unsubscribed"]),
        "stage": st.sampled_from([None, "prospect", "loyal"]),
        "score": st.sampled_from([None, -5, 0, 10, 50, 51]),
    }
)

ops_values = st.one_of(
    st.tuples(st.sampled_from(["eq", "ne", "contains"]), scalars),
    st.tuples(st.sampled_from(["gt", "gte", "lt", "lte"]), texts | numbers),
    st.tuples(
        st.just("between"), st.tuples(numbers, numbers).map(sorted) | st.tuples(texts, texts).map(sorted)
    ),
    st.tuples(st.just("in"), st.lists(scalars, min_size=1, max_size=3)),
    st.tuples(st.sampled_from(["exists", "not_exists"]), st.none()),
    st.tuples(st.just("within_last_days"), st.integers(1, 400)),
    st.tuples(st.sampled_from(["before", "after"]), st.sampled_from(["2026-11-01", {"days_ago": 3}])),
)


@st.composite
def trait_leaf(draw):
    op, value = draw(ops_values)
    leaf = {
        "trait": draw(st.sampled_from(["city", "age", "vip", "signup", "interests", "unknown"])),
        "op": op,
    }
    if value is not None:
        leaf["value"] = list(value) if isinstance(value, tuple) else value
    return leaf


@st.composite
def event_leaf(draw):
    leaf = {"event": draw(st.sampled_from(EVENTS))}
    shape = draw(st.sampled_from(["count", "not", "moment"]))
    if shape == "not":
        leaf["did"] = False
    elif shape == "count":
        leaf["count"] = {"op": draw(st.sampled_from(["gte", "lte", "eq"])), "value": draw(st.integers(0, 3))}
    if shape != "moment":
        window = draw(st.sampled_from(["none", "within", "between"]))
        if window == "within":
            leaf["within_days"] = draw(st.integers(1, 40))
        elif window == "between":
            today = timezone.localdate()
            first = draw(st.integers(0, 40))
            leaf["between"] = [
                str(today - dt.timedelta(days=first)),
                str(today - dt.timedelta(days=first // 2)),
            ]
    else:
        which = draw(st.sampled_from(["first_time", "last_time"]))
        op = draw(st.sampled_from(["within_last_days", "before", "after"]))
        leaf[which] = {
            "op": op,
            "value": draw(st.integers(1, 30)) if op == "within_last_days" else {"days_ago": 5},
        }
    if draw(st.booleans()):
        op, value = draw(
            st.one_of(
                st.tuples(st.sampled_from(["eq", "ne"]), st.sampled_from(["美妆", "数码", 99, "99"])),
                st.tuples(st.sampled_from(["gt", "lte"]), st.integers(0, 500)),
                st.tuples(st.just("exists"), st.none()),
            )
        )
        condition = {"property": draw(st.sampled_from(["category", "price"])), "op": op}
        if value is not None:
            condition["value"] = value
        leaf["where"] = [condition]
    return leaf


leaves = st.one_of(
    trait_leaf(),
    event_leaf(),
    st.builds(lambda tag: {"tag": tag}, st.sampled_from(["new", "online", "nobody"])),
    st.just({"segment": "vip"}),
    st.builds(lambda role: {"role": role}, st.sampled_from(["supplier", "buyer", "agent"])),
    st.builds(
        lambda status: {"consent": "sms", "status": status}, st.sampled_from(["subscribed", "unsubscribed"])
    ),
    st.builds(lambda stage: {"stage": stage}, st.sampled_from(["prospect", "loyal", "gone"])),
    st.one_of(
        st.tuples(st.sampled_from(["eq", "gt", "gte", "lt", "lte"]), st.sampled_from([-5, 0, 10, 50])),
        st.tuples(st.just("between"), st.sampled_from([[0, 50], [-10, 0], [11, 60]])),
    ).map(lambda test: {"score": {"op": test[0], "value": test[1]}}),
)
rules = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.builds(lambda items: {"and": items}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda items: {"or": items}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda child: {"not": child}, children),
    ),
    max_leaves=6,
)


def store(source, people) -> list[Customer]:
    now = timezone.now()
    customers = []
    new_tag = {
        key: Tag.objects.get_or_create(key=key, defaults={"name": key})[0] for key in ("new", "online")
    }
    vip = Segment.objects.get_or_create(key="vip", defaults={"name": "VIP"})[0]
    for person_data in people:
        user_id = f"p-{uuid.uuid4()}"
        traits = dict(person_data["traits"])
        if person_data["role"] is not None:
            traits["role"] = person_data["role"]
        messages = [_message("identify", "identify", user_id, now, {}, traits)]
        for name, days_ago, hour, properties in person_data["events"]:
            # Days ago on the company's calendar (rule windows count its days), at that local hour.
            moment = timezone.localtime(now).replace(hour=hour) - dt.timedelta(days=days_ago)
            messages.append(_message("track", name, user_id, moment, properties, {}))
        inbox_store(source=source, events=messages, enqueue=False)
        batches_process()
        customer = Customer.objects.get(pk=Identity.objects.get(type="user_id", value=user_id).customer_id)
        for key in person_data["tags"]:
            CustomerTag.objects.create(customer=customer, tag=new_tag[key])
        for _key in person_data["segments"]:
            SegmentMember.objects.create(segment=vip, customer=customer, entered_at=now)
        if person_data.get("stage"):
            stage = LifecycleStage.objects.get_or_create(
                key=person_data["stage"], defaults={"name": person_data["stage"], "rule": {}}
            )[0]
            CustomerStage.objects.create(customer=customer, stage=stage, entered_at=now)
        if person_data.get("score") is not None:
            CustomerScore.objects.create(customer=customer, points=person_data["score"], updated_at=now)
        if person_data["consent"]:
            consent_record(
                customer_id=customer.pk,
                channel="sms",
                status=person_data["consent"],
                changed_at=now,
                origin="t",
            )
        customers.append(customer)
    return customers


def _message(kind, name, user_id, moment, properties, traits):
    return {
        "kind": kind,
        "name": name,
        "messageId": str(uuid.uuid4()),
        "userId": user_id,
        "anonymousId": None,
        "timestamp": moment.isoformat(),
        "properties": properties,
        "context": {},
        "traits": traits,
    }


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(people=st.lists(person, min_size=1, max_size=5), candidates=st.lists(rules, min_size=1, max_size=4))
def test_sql_and_memory_select_the_same_customers(server_source, people, candidates):
    parsed = []
    for candidate in candidates:
        try:
            parsed.append(rule_parse(candidate))
        except RuleError:
            continue
    assume(parsed)
    with transaction.atomic():
        customers = store(server_source, people)
        today = timezone.localdate()
        ids = [customer.pk for customer in customers]
        for rule in parsed:
            in_sql = set(rule_customers(rule, today=today).filter(pk__in=ids).values_list("pk", flat=True))
            in_memory = {
                customer.pk
                for customer in Customer.objects.filter(pk__in=ids)
                if rule_matches(rule, facts_load(customer=customer, rule=rule), today=today)
            }
            assert in_sql == in_memory, rule
            # The same rule compiled for a few customers (the refresh after new events).
            with connection.cursor() as cursor:
                cursor.execute(*rule_customer_ids_sql(rule, today=today, among=ids))
                assert {row[0] for row in cursor.fetchall()} == in_sql, rule
        transaction.set_rollback(True)
