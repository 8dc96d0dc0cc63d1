"""Nodes that reach outside: a webhook POSTed to a real local HTTP server (success, an error answer,
nobody listening), and an AI call placed through the call sandbox with the script of the customer's
tag group, its result pushed back to the inbound URL and branched on by duration."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from django.utils import timezone

from connectors.dispatcher import dispatch_account_run
from connectors.models import Message
from connectors.sandbox import receipts_post
from connectors.services import template_save
from journeys.matching import events_match
from journeys.models import Enrollment
from journeys.validation import graph_validate
from segments.models import CustomerTag, Tag, TagGroup
from segments.tags import customers_tag, tag_save
from tests.connectors.test_receipts import via
from tests.journeys.conftest import edge, node, published, track
from tests.processes import free_port

pytestmark = pytest.mark.django_db(transaction=True)


class Receiver(BaseHTTPRequestHandler):
    """The company's own system: records what it gets; /broken answers 500."""

    received: list[dict] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
        status = 500 if self.path == "/broken" else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver(settings):
    # Our fake of the company's system listens on 127.0.0.1: allowed here only, never by default.
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.OUTBOUND_ALLOWED_PORTS = ["1024-65535"]
    Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def webhook_graph(url: str) -> dict:
    return {
        "nodes": [
            node("t1", "event_trigger", event="lead_created"),
            node("w1", "call_webhook", url=url, timeout_seconds=2, data={"pipeline": "直播线索"}),
            node("g1", "add_tag", tag="bought", ends=["default"]),
            node("g2", "add_tag", tag="lost", ends=["default"]),
        ],
        "edges": [edge("t1", "w1"), edge("w1", "g1", "success"), edge("w1", "g2", "failed")],
    }


@pytest.mark.parametrize(
    ("path", "handle", "reason"),
    [("/crm", "success", "HTTP 200"), ("/broken", "failed", "HTTP 500"), (None, "failed", "no answer")],
)
def test_a_webhook_posts_the_customer_and_branches_on_the_answer(
    receiver, make_customer, tags, path, handle, reason
):
    url = f"{receiver}{path}" if path else f"http://127.0.0.1:{free_port()}/nobody"
    published(webhook_graph(url))
    customer = make_customer()
    track(customer, "lead_created", {"lead_id": "L-7"})
    events_match(customer_ids=[customer.pk])
    enrollment = Enrollment.objects.get()
    step = enrollment.steps.get(node_id="w1")
    assert step.outcome == handle
    assert step.reason.startswith(reason)
    assert CustomerTag.objects.filter(
        customer=customer, tag__key="bought" if handle == "success" else "lost"
    ).exists()
    if path:
        (request,) = Receiver.received
        assert request["path"] == path
        assert request["headers"]["Idempotency-Key"] == f"journey:{enrollment.pk}:w1:1"
        assert request["body"]["customer"]["name"] == "王芳"
        assert request["body"]["context"] == {"lead_id": "L-7"}
        assert request["body"]["data"] == {"pipeline": "直播线索"}


class Observer(BaseHTTPRequestHandler):
    """The company's system, looking at our database while it answers (security review, finding 8):
    is the step already committed, and can another connection lock the enrollment? Then it stalls
    (a blackholed URL) until released, for ``/slow``."""

    seen: list[dict] = []
    release = threading.Event()

    def do_POST(self):
        from django.db import OperationalError, connection, transaction

        from journeys.models import Step

        self.rfile.read(int(self.headers["Content-Length"]))
        enrollment_id = int(self.headers["Idempotency-Key"].split(":")[1])
        try:
            with transaction.atomic():
                locked = Enrollment.objects.select_for_update(nowait=True).filter(pk=enrollment_id).exists()
        except OperationalError:  # locked by an open transaction of the engine
            locked = False
        Observer.seen.append(
            {"step_committed": Step.objects.filter(enrollment_id=enrollment_id).exists(), "lockable": locked}
        )
        connection.close()
        if self.path == "/slow":
            Observer.release.wait(10)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def observer(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.OUTBOUND_ALLOWED_PORTS = ["1024-65535"]
    Observer.seen, Observer.release = [], threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Observer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    Observer.release.set()
    server.shutdown()
    server.server_close()


def test_the_engine_holds_no_transaction_while_a_webhook_answers(observer, make_customer, tags):
    published(webhook_graph(f"{observer}/crm"))
    customer = make_customer()
    track(customer, "lead_created", {"lead_id": "L-8"})
    events_match(customer_ids=[customer.pk])
    assert Observer.seen == [{"step_committed": True, "lockable": True}]
    step = Enrollment.objects.get().steps.get(node_id="w1")
    assert (step.outcome, step.reason) == ("success", "HTTP 200")


def test_a_batch_calls_within_its_time_budget_and_the_customers_not_reached_wait_briefly(
    observer, make_customer, tags
):
    from django.db import transaction

    from journeys.calls import CONCURRENCY, calls_run
    from journeys.engine import batch_run
    from journeys.models import Step

    started = timezone.now()
    with time_machine.travel(started, tick=True):
        graph = webhook_graph(f"{observer}/slow")
        graph["nodes"][1]["config"]["timeout_seconds"] = 1
        published(graph, name="慢的CRM")
        customers = [
            make_customer(name=f"客户{n}", phone=f"+861380013{n:04d}") for n in range(CONCURRENCY + 2)
        ]
        with transaction.atomic():  # enrolled and entered, their calls left to the engine's round
            for customer in customers:
                track(customer, "lead_created")
            events_match(customer_ids=[c.pk for c in customers])
        waiting = Enrollment.objects.filter(journey__name="慢的CRM")
        assert waiting.count() == CONCURRENCY + 2
        assert Observer.seen == []
        # The round may start calls for half a second; each call gives up after its 1 s timeout.
        answered = calls_run(budget_seconds=0.5)
        assert answered == CONCURRENCY
        batch_run(limit=500)
        steps = Step.objects.filter(enrollment__in=waiting, node_id="w1")
        assert steps.count() == CONCURRENCY + 2  # one step per customer, however many rounds
        assert sorted(steps.values_list("outcome", flat=True)) == [""] * 2 + ["failed"] * CONCURRENCY
        assert all(
            reason.startswith("no answer")
            for reason in steps.exclude(outcome="").values_list("reason", flat=True)
        )
        for enrollment in waiting.filter(steps__node_id="w1", steps__outcome=""):
            # Not reached: taken again within seconds, not after the round's lease.
            assert enrollment.status == "active" and enrollment.node_id == "w1"
            assert enrollment.wake_at - started < dt.timedelta(seconds=10)


def test_a_webhook_url_must_be_http():
    problems = graph_validate(webhook_graph("ftp://crm.example/in"))
    assert [p["field"] for p in problems if p["node"] == "w1"] == ["config.url"]


@pytest.fixture
def call_setup(make_account, tags):
    account = make_account(kind="sandbox_call", name="外呼沙箱", receipt_delay_seconds=0)
    dormant = TagGroup.objects.create(name="沉睡客户")
    tag_save(key="dormant-6m", name="6个月未互动", group=dormant, actor=None)
    for key, script in (("call-dormant", "dormant-v2"), ("call-general", "general-v1")):
        template_save(
            key=key,
            name=key,
            channel="call",
            body={"script_id": script, "params": {"name": "{{ customer.name }}"}},
            known_traits=set(),
            allow_unknown=True,
        )
    return account


def call_graph(account, min_duration: int) -> dict:
    return {
        "nodes": [
            node("t1", "event_trigger", event="win_back"),
            node(
                "c1",
                "ai_call",
                account=account.pk,
                scripts=[{"tag_group": "沉睡客户", "template": "call-dormant"}],
                default_template="call-general",
                min_duration_seconds=min_duration,
            ),
            node("g1", "add_tag", tag="bought", ends=["default"]),
            node("g2", "add_tag", tag="lead", ends=["default"]),
            node("g3", "add_tag", tag="lost", ends=["default"]),
        ],
        "edges": [
            edge("t1", "c1"),
            edge("c1", "g1", "answered"),
            edge("c1", "g2", "short_call"),
            edge("c1", "g3", "not_answered"),
        ],
    }


@pytest.mark.parametrize(("min_duration", "handle"), [(30, "answered"), (60, "short_call")])
def test_an_ai_call_uses_the_tag_groups_script_and_branches_on_the_call_duration(
    client, call_setup, make_customer, min_duration, handle
):
    account = call_setup
    dormant = make_customer()
    customers_tag(customer_ids=[dormant.pk], tag=Tag.objects.get(key="dormant-6m"), actor=None)
    no_phone = make_customer(name="李雷", phone="")
    published(call_graph(account, min_duration))
    for customer in (dormant, no_phone):
        track(customer, "win_back")
    events_match(customer_ids=[dormant.pk, no_phone.pk])
    scripts = dict(Message.objects.values_list("customer_id", "template__key"))
    assert scripts == {dormant.pk: "call-dormant", no_phone.pk: "call-general"}
    # Nobody to call: not answered at once.
    assert Enrollment.objects.get(customer=no_phone).steps.get(node_id="c1").outcome == "not_answered"

    dispatch_account_run(account_id=account.pk, budget_seconds=5)
    assert Message.objects.get(customer=dormant).content["script_id"] == "dormant-v2"
    # The platform pushes the call result (answered, 37 seconds) to our inbound URL, signed.
    assert receipts_post(post=via(client)) == 1
    events_match(customer_ids=[dormant.pk])
    step = Enrollment.objects.get(customer=dormant).steps.get(node_id="c1")
    assert (step.outcome, step.reason.endswith("37 s")) == (handle, True)
