"""The demo customers, at a small size: loaded through the real ingest path, one person's channels merged
into one profile, 90 days of events with orders in the rollups, and a second load that adds nothing."""

import datetime as dt
import zoneinfo
from collections import Counter, defaultdict
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db.models import Max, Min, Sum

from cdp.demo_customers import DEMO_SOURCES, demo_customers_load, demo_messages, demo_sources_ensure
from cdp.identity import normalise_phone
from cdp.ingest import batches_process, inbox_store
from cdp.models import Customer, CustomerEventStats, Event, Identity, IngestBatch, MergeLog, Source

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=SHANGHAI)  # fixed: the demo is deterministic for one moment
PEOPLE = 60


def counts() -> dict[str, int]:
    return {
        "customers": Customer.objects.count(),
        "identities": Identity.objects.count(),
        "events": Event.objects.count(),
        "merges": MergeLog.objects.count(),
        "batches": IngestBatch.objects.count(),
    }


@pytest.fixture
def loaded(db):
    # Loaded at NOW, and the tests run a few minutes later: rules with day windows over the demo's
    # events find what a user loading the demo then would (the clock ticks, as ingestion waits on it).
    with time_machine.travel(NOW + dt.timedelta(minutes=5)):
        # Requests of a few dozen events, as clients send them: a visitor is stored before the request
        # with their login arrives, so merges are real ones (within one request they happen in memory).
        yield demo_customers_load(people=PEOPLE, now=NOW, chunk_size=25)


def test_the_load_goes_through_the_inbox_into_the_five_demo_sources(loaded):
    assert not loaded.already_loaded
    assert sorted(Source.objects.values_list("name", "kind")) == sorted(DEMO_SOURCES)
    assert not IngestBatch.objects.exists()  # every request processed, out of the inbox
    assert all(Source.objects.values_list("event_count", flat=True))  # counted as each was processed
    assert loaded.events == Event.objects.count() > PEOPLE * 10
    assert {kind for _name, kind in DEMO_SOURCES} == set(Event.objects.values_list("channel", flat=True))
    assert sum(Source.objects.values_list("event_count", flat=True)) == loaded.events


def test_one_persons_channels_end_up_in_one_profile(loaded):
    assert loaded.merges > 0
    sources, types = defaultdict(set), defaultdict(set)
    for customer_id, source_kind, identity_type in Identity.objects.values_list(
        "customer_id", "source__kind", "type"
    ):
        sources[customer_id].add(source_kind)
        types[customer_id].add(identity_type.split(":", 1)[0])
    merged = [customer_id for customer_id in sources if len(sources[customer_id]) >= 3]
    assert merged, "some customer holds identities from at least three channels"
    richest = max(merged, key=lambda customer_id: (len(sources[customer_id]), len(types[customer_id])))
    assert {"phone", "user_id", "anonymous_id"} <= types[richest]
    customer = Customer.objects.get(pk=richest)
    assert customer.merged_into_id is None
    assert customer.name and customer.traits["role"] in ("supplier", "buyer", "both")
    assert len(set(customer.events.values_list("channel", flat=True))) >= 3
    # WeChat: the Official Account's and the mini program's openids meet through the unionid.
    assert any(
        {"wechat_unionid", "wechat_openid", "phone"} <= found
        and Identity.objects.filter(customer_id=customer_id, type__startswith="wechat_openid:").count() == 2
        for customer_id, found in types.items()
    )
    # Merged-away customers keep no identities: a later message finds the survivor.
    gone = Customer.objects.filter(merged_into__isnull=False)
    assert gone.exists()
    assert not Identity.objects.filter(customer__in=gone).exists()


def test_a_merged_profile_shows_every_event_of_the_person(loaded):
    gone = Customer.objects.filter(merged_into__isnull=False)
    assert gone.exists()
    assert not Event.objects.filter(customer__in=gone).exists()
    assert not CustomerEventStats.objects.filter(customer__in=gone).exists()


def test_people_look_real(loaded):
    phones = Identity.objects.filter(type="phone").values_list("value", flat=True)
    assert phones and all(phone.startswith("+861") and normalise_phone(phone) == phone for phone in phones)
    named = Customer.objects.filter(merged_into__isnull=True).exclude(name="")
    assert named.count() >= PEOPLE // 2
    for customer in named:
        assert all("\u4e00" <= char <= "\u9fff" for char in customer.name), customer.name
    roles = Counter(customer.traits.get("role") for customer in named)
    assert roles["supplier"] and roles["buyer"]
    industries = {
        customer.traits.get("industry") for customer in named if customer.traits.get("role") != "buyer"
    }
    assert industries <= {"安防监控", "智能家居", "综合布线", "楼宇对讲", "音视频", None}
    assert industries - {None}
    # ID numbers are identities (hashed, encrypted), never traits in clear.
    assert not any("id_number" in customer.traits for customer in Customer.objects.all())


def test_ninety_days_of_events_with_the_evening_and_double_11_peaks(loaded):
    span = Event.objects.aggregate(first=Min("timestamp"), last=Max("timestamp"))
    assert span["last"] <= NOW
    assert NOW - dt.timedelta(days=90) <= span["first"] <= NOW - dt.timedelta(days=85)
    days = Counter(
        moment.astimezone(SHANGHAI).date() for moment in Event.objects.values_list("timestamp", flat=True)
    )
    assert len(days) >= 80
    double_11 = days[dt.date(2026, 11, 11)]
    assert double_11 == max(days.values())
    assert double_11 > 2 * sum(days.values()) / len(days)
    hours = Counter(
        moment.astimezone(SHANGHAI).hour
        for moment in Event.objects.exclude(channel="wechat_oa").values_list("timestamp", flat=True)
    )
    assert sum(hours[hour] for hour in (20, 21)) > 4 * sum(hours[hour] for hour in (3, 4))
    names = set(Event.objects.values_list("name", flat=True))
    assert {
        "page_viewed",
        "Product Viewed",
        "Product Added",
        "Order Completed",
        "Signed Up",
        "Form Submitted",
        "wechat_follow",
        "Menu Clicked",
        "identify",
    } <= names
    viewed = Event.objects.filter(name="Product Viewed").first()
    assert {"category", "sku", "price"} <= set(viewed.properties)


def test_orders_carry_revenue_and_show_in_the_rollups(loaded):
    orders = Event.objects.filter(name="Order Completed")
    assert orders.exists()
    for order in orders:
        assert order.channel == "server" and order.properties["order_id"].startswith("SO")
        assert order.amount == Decimal(str(order.properties["revenue"])).quantize(Decimal("0.01")) > 0
    stats = CustomerEventStats.objects.filter(name="Order Completed")
    assert stats.aggregate(total=Sum("amount_sum"))["total"] == orders.aggregate(total=Sum("amount"))["total"]
    assert stats.aggregate(total=Sum("count"))["total"] == orders.count()
    for stat in stats:
        assert stat.customer.merged_into_id is None
        assert stat.count == orders.filter(customer_id=stat.customer_id).count()


def test_a_second_load_adds_nothing(loaded):
    before = counts()
    again = demo_customers_load(people=PEOPLE, now=NOW)
    assert again.already_loaded
    assert (again.customers, again.identities, again.events, again.merges) == (0, 0, 0, 0)
    assert counts() == before


def test_the_same_messages_sent_again_are_dropped_as_replays(loaded):
    """The messageIds are deterministic: even past the loaded-once check nothing is stored twice."""
    messages = demo_messages(people=PEOPLE, now=NOW)
    assert messages == demo_messages(people=PEOPLE, now=NOW)
    assert len({message["messageId"] for _channel, message in messages}) == len(messages)
    sources = demo_sources_ensure()
    by_channel = defaultdict(list)
    for channel, message in messages:
        by_channel[channel].append(message)
    before = counts()
    for channel, events in by_channel.items():
        inbox_store(source=sources[channel], events=events)
    assert batches_process(limit=100) == 0
    assert {**counts(), "batches": before["batches"]} == before


def test_demo_data_command_prints_what_it_loaded_and_can_skip_customers(db):
    out = StringIO()
    call_command("demo_data", "--skip-customers", stdout=out)
    assert not Customer.objects.exists() and not Source.objects.exists()
    assert "admin" in out.getvalue()

    out = StringIO()
    call_command("demo_data", "--people", "20", stdout=out)
    customers = Customer.objects.filter(merged_into__isnull=True).count()
    assert f"Loaded {customers} demo customers" in out.getvalue()
    # the events loaded, not those the demo's rules then record (tags, stages, segments)
    assert f"{Event.objects.exclude(channel='system').count()} events" in out.getvalue()
    assert "lifecycle stages" in out.getvalue()

    out = StringIO()
    call_command("demo_data", "--people", "20", stdout=out)
    assert "already loaded" in out.getvalue()
    assert Customer.objects.filter(merged_into__isnull=True).count() == customers
