"""Journeys with the product's real processes: a Celery worker (engine, dispatch and default
queues), beat's tick every second, and the web server that sandbox providers post receipts to.
The live-stream sign-up journey: the form is submitted, the customer is tagged, waits, is checked,
gets a WeChat template that the provider refuses, an SMS instead (delivered), and then either clicks
the menu or the wait times out. Nothing is called in-process: events are recorded on timelines and
the processes do the rest."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.utils import timezone

from cdp.celery import app as celery_app
from connectors.models import Message
from journeys.models import Enrollment, Step
from segments.models import CustomerTag
from tests.journeys.conftest import edge, node, published, track
from tests.processes import ProcessGroup, current_database_url, free_port, get, wait_until

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def processes(redis_url, tmp_path, transactional_db, monkeypatch):
    # What this process queues (the ingest signal's matching task) goes to the workers' broker.
    monkeypatch.setitem(celery_app.conf, "broker_url", redis_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    group = ProcessGroup(
        {
            "DATABASE_URL": current_database_url(),
            "CELERY_BROKER_URL": redis_url,
            "REDIS_URL": redis_url,
            "SITE_URL": url,
            "JOURNEY_TICK_SECONDS": "1",
        },
        tmp_path,
    )
    group.start("web", "daphne", "-b", "127.0.0.1", "-p", str(port), "cdp.asgi:application")
    group.start(
        "worker", "celery", "-A", "cdp", "worker", "-Q", "engine,matching,dispatch,default,segments,sandbox",
        "-c", "3", "-n", "journeys@%h", "--loglevel", "INFO",
    )  # fmt: skip
    group.start("beat", "celery", "-A", "cdp", "beat", "--loglevel", "INFO")
    wait_until(lambda: get(f"{url}/login/")[0] == 200, timeout=60, what="the web server")
    yield group
    group.stop_all()


def live_stream_graph(wechat, sms) -> dict:
    return {
        "nodes": [
            node("t1", "form_submitted_trigger", form="live-signup"),
            node("a1", "add_tag", tag="lead"),
            node("d1", "delay", seconds=2),
            node("c1", "condition", branches=[{"id": "known", "rule": {"trait": "city", "op": "exists"}}]),
            node("s1", "send", account=wechat.pk, template="cart-wechat", ends=["no_response"]),
            node("s2", "send", account=sms.pk, template="cart-sms", ends=["failed", "no_response"]),
            node("w1", "wait_for_event", event="menu_clicked", timeout_seconds=15),
            node("g1", "add_tag", tag="bought", ends=["default"]),
            node("g2", "add_tag", tag="lost", ends=["default"]),
            node("x1", "exit"),
        ],
        "edges": [
            edge("t1", "a1"),
            edge("a1", "d1"),
            edge("d1", "c1"),
            edge("c1", "s1", "known"),
            edge("c1", "x1", "else"),
            edge("s1", "w1", "delivered"),
            edge("s1", "s2", "failed"),
            edge("s2", "w1", "delivered"),
            edge("w1", "g1", "happened"),
            edge("w1", "g2", "timed_out"),
        ],
    }


def at(customer, node_id: str) -> bool:
    return Enrollment.objects.filter(customer=customer, node_id=node_id, phase="resume").exists()


def test_the_live_stream_sign_up_journey_runs_on_real_processes(
    processes, make_account, make_customer, sms_template, wechat_template, tags
):
    wechat = make_account(
        kind="sandbox_wechat_template",
        name="公众号沙箱",
        appid="wx0000sandbox00000",
        error_rate=1.0,
        error_code="43004",
    )
    sms = make_account(receipt_delay_seconds=0)
    clicker = make_customer(openid="o-clicker")
    idle = make_customer(name="李雷", phone="+8613900139000", openid="o-idle")
    published(live_stream_graph(wechat, sms))
    started = timezone.now()
    for customer in (clicker, idle):
        track(customer, "Form Submitted", {"form_id": "live-signup", "form_name": "直播报名"})

    wait_until(
        lambda: at(clicker, "w1") and at(idle, "w1"), timeout=60, what="both customers at the menu check"
    )
    track(clicker, "menu_clicked")
    wait_until(
        lambda: Enrollment.objects.filter(status="completed").count() == 2, timeout=60, what="both to finish"
    )

    def path(customer):
        return list(
            Step.objects.filter(enrollment__customer=customer)
            .order_by("id")
            .values_list("node_id", "outcome")
        )

    fallback = [("t1", "default"), ("a1", "default"), ("d1", "default"), ("c1", "known"), ("s1", "failed")]
    assert path(clicker) == [*fallback, ("s2", "delivered"), ("w1", "happened"), ("g1", "default")]
    assert path(idle) == [*fallback, ("s2", "delivered"), ("w1", "timed_out"), ("g2", "default")]
    for customer, tag in ((clicker, "bought"), (idle, "lost")):
        held = set(CustomerTag.objects.filter(customer=customer).values_list("tag__key", flat=True))
        assert held == {"lead", tag}
    assert sorted(Message.objects.values_list("channel", "status")) == [
        ("sms", "delivered"),
        ("sms", "delivered"),
        ("wechat_template", "failed"),
        ("wechat_template", "failed"),
    ]
    # The delay ended on a tick, not at once.
    delay_left = (
        Step.objects.filter(enrollment__customer=idle, node_id="d1").values_list("left_at", flat=True).get()
    )
    assert (delay_left - started).total_seconds() >= 2
    assert "journeys.tasks.engine_tick" in processes.log("worker")


def test_two_beats_and_a_worker_killed_mid_run_repeat_no_step_and_lose_none(
    redis_url, tmp_path, transactional_db, monkeypatch, tags
):
    """Two beat schedulers tick at once, two workers share the engine queue, and one worker is killed
    with SIGKILL twice while customers are mid-journey: every customer finishes, and the steps whose
    work is not idempotent by itself (score points, tag events) happened exactly once each."""
    from cdp.models import Customer, Event
    from segments.models import ScoreEntry

    monkeypatch.setitem(celery_app.conf, "broker_url", redis_url)
    env = {
        "DATABASE_URL": current_database_url(),
        "CELERY_BROKER_URL": redis_url,
        "REDIS_URL": redis_url,
        "JOURNEY_TICK_SECONDS": "1",
    }
    group = ProcessGroup(env, tmp_path)
    try:
        start_worker = _engine_processes(group, tmp_path, beats=2)
        customers = Customer.objects.bulk_create([Customer(name=f"客户{n}") for n in range(300)])
        published(
            {
                "nodes": [
                    node("t1", "event_trigger", event="signed_up"),
                    node("d1", "delay", seconds=2),
                    node("a1", "add_score", points=3),
                    node("g1", "add_tag", tag="lead", ends=["default"]),
                ],
                "edges": [edge("t1", "d1"), edge("d1", "a1"), edge("a1", "g1")],
            }
        )
        for customer in customers:
            track(customer, "signed_up")
        # Kills start once everyone is enrolled: a matching task lost with its worker is redelivered
        # only after the broker's visibility timeout, and trigger matching has no sweep of its own yet.
        wait_until(lambda: Enrollment.objects.count() == 300, timeout=60, what="every customer enrolled")
        for scored in (1, 100):
            wait_until(
                lambda scored=scored: Step.objects.filter(node_id="a1").count() >= scored,
                timeout=60,
                what=f"{scored} scores",
            )
            group.kill("one")  # SIGKILL, mid-batch or between batches
            start_worker("one")
        wait_until(
            lambda: Enrollment.objects.filter(status="completed").count() == 300,
            timeout=120,
            what="every customer",
        )
    finally:
        group.stop_all()
    assert Enrollment.objects.count() == 300
    assert ScoreEntry.objects.count() == 300
    assert Event.objects.filter(name="tag_added").count() == 300
    assert Step.objects.count() == 300 * 4


def _engine_processes(group: ProcessGroup, tmp_path, *, beats: int) -> Callable[[str], None]:
    def start_worker(name: str) -> None:
        group.start(
            name, "celery", "-A", "cdp", "worker", "--pool", "solo", "-Q", "engine,matching",
            "-n", f"{name}@%h", "--loglevel", "INFO",
        )  # fmt: skip

    start_worker("one")
    start_worker("two")
    for index in range(1, beats + 1):
        group.start(
            f"beat{index}",
            "celery",
            "-A",
            "cdp",
            "beat",
            "--loglevel",
            "INFO",
            "-s",
            str(tmp_path / f"b{index}"),
        )
    return start_worker


def _audience(size: int) -> None:
    """``size`` customers with phones, all in the static segment "audience" (set-based, as an import)."""
    from django.db import connection

    from segments.models import Segment

    segment = Segment.objects.create(key="audience", name="人群", kind=Segment.Kind.STATIC)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO cdp_customer (name, traits, traits_updated_at, created_at, updated_at)"
            " SELECT '客户' || n, '{}'::jsonb, '{}'::jsonb, now(), now() FROM generate_series(1, %s) AS n",
            [size],
        )
        cursor.execute(
            "INSERT INTO cdp_identity (customer_id, type, value, encrypted_value, first_seen_at)"
            " SELECT id, 'phone', '+86139' || lpad(id::text, 8, '0'), '', now() FROM cdp_customer"
        )
        cursor.execute(
            "INSERT INTO segments_segmentmember (segment_id, customer_id, entered_at)"
            " SELECT %s, id, now() FROM cdp_customer",
            [segment.pk],
        )


def test_workers_killed_again_and_again_lose_no_step_and_duplicate_no_message(
    redis_url, tmp_path, transactional_db, monkeypatch, make_account, sms_template
):
    """10,000 customers of a scheduled audience go through a delay to an SMS while the two engine
    workers are killed with SIGKILL, one after the other, every couple of seconds, and two beats
    tick at once: every customer ends at the send with exactly one message in the outbox and each
    of their three steps written once."""
    monkeypatch.setitem(celery_app.conf, "broker_url", redis_url)
    sms = make_account()
    _audience(10_000)
    moment = timezone.now() + dt.timedelta(seconds=5)
    published(
        {
            "nodes": [
                node("t1", "scheduled_trigger", segment="audience", repeat="once", at=moment.isoformat()),
                node("d1", "delay", seconds=1),
                node(
                    "s1",
                    "send",
                    account=sms.pk,
                    template="cart-sms",
                    ends=["delivered", "failed", "no_response"],
                ),
            ],
            "edges": [edge("t1", "d1"), edge("d1", "s1")],
        }
    )
    group = ProcessGroup(
        {
            "DATABASE_URL": current_database_url(),
            "CELERY_BROKER_URL": redis_url,
            "REDIS_URL": redis_url,
            "JOURNEY_TICK_SECONDS": "1",
        },
        tmp_path,
    )
    try:
        start_worker = _engine_processes(group, tmp_path, beats=2)
        # Kills at points spread over the run: while the audience enters, then as the delays end and
        # the sends are written.
        queued_at_kills = []
        for number, steps in enumerate((1, 6_000, 12_000, 18_000, 24_000)):
            wait_until(lambda steps=steps: Step.objects.count() >= steps, timeout=60, what=f"{steps} steps")
            queued_at_kills.append(Message.objects.count())
            victim = ("one", "two")[number % 2]
            group.kill(victim)  # SIGKILL, mid-batch or between batches
            start_worker(victim)
        wait_until(lambda: Message.objects.count() == 10_000, timeout=90, what="every first send queued")
    finally:
        group.stop_all()
    assert sum(queued < 10_000 for queued in queued_at_kills) >= 3, queued_at_kills  # kills mid-run
    assert Enrollment.objects.count() == 10_000
    assert Enrollment.objects.filter(node_id="s1", phase="resume", status="active").count() == 10_000
    assert Message.objects.values("customer_id").distinct().count() == 10_000
    assert Step.objects.count() == 3 * 10_000
    assert Step.objects.filter(node_id="d1", outcome="default").count() == 10_000


def test_a_version_published_mid_journey_moves_no_one(
    redis_url, tmp_path, transactional_db, monkeypatch, tags
):
    """Customers in the middle of version 1 when version 2 is published finish on version 1; those
    who enter afterwards run version 2 (through the worker, beat and the ingest signal's matching)."""
    from cdp.models import Customer
    from journeys.services import journey_publish, journey_save

    monkeypatch.setitem(celery_app.conf, "broker_url", redis_url)
    group = ProcessGroup(
        {
            "DATABASE_URL": current_database_url(),
            "CELERY_BROKER_URL": redis_url,
            "REDIS_URL": redis_url,
            "JOURNEY_TICK_SECONDS": "1",
        },
        tmp_path,
    )
    graph = {
        "nodes": [
            node("t1", "event_trigger", event="signed_up"),
            node("d1", "delay", seconds=15),
            node("g1", "add_tag", tag="lead", ends=["default"]),
        ],
        "edges": [edge("t1", "d1"), edge("d1", "g1")],
    }
    journey = published(graph)
    early = Customer.objects.bulk_create([Customer(name=f"早{n}") for n in range(100)])
    late = Customer.objects.bulk_create([Customer(name=f"晚{n}") for n in range(100)])
    try:
        _engine_processes(group, tmp_path, beats=1)
        for customer in early:
            track(customer, "signed_up")
        wait_until(  # entered and run to their delay (matching inserts them, then runs them)
            lambda: Enrollment.objects.filter(node_id="d1", phase="resume", status="active").count() == 100,
            timeout=60,
            what="the first hundred waiting in the delay",
        )
        graph["nodes"][2]["config"]["tag"] = "bought"
        journey_save(name=journey.name, journey=journey, actor=None, draft_graph=graph)
        journey_publish(journey=journey, actor=None)
        # Published while every one of them was in the middle of version 1 (in its delay).
        mid_journey = Enrollment.objects.filter(node_id="d1", phase="resume", status="active").count()
        for customer in late:
            track(customer, "signed_up")
        wait_until(
            lambda: Enrollment.objects.filter(status="completed").count() == 200, timeout=60, what="everyone"
        )
    finally:
        group.stop_all()
    assert mid_journey == 100
    versions = dict(Enrollment.objects.values_list("customer_id", "version__number"))
    assert {versions[customer.pk] for customer in early} == {1}
    assert {versions[customer.pk] for customer in late} == {2}
    assert set(CustomerTag.objects.filter(customer__in=early).values_list("tag__key", flat=True)) == {"lead"}
    assert set(CustomerTag.objects.filter(customer__in=late).values_list("tag__key", flat=True)) == {"bought"}
    assert CustomerTag.objects.count() == 200
