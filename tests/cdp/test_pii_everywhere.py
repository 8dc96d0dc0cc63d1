"""Review finding 1: people without ``view_pii`` (the built-in Analyst and Marketer) never read a full
phone, email or ID number, on any path.

One customer has a known mainland mobile, email and 18-digit ID number under English keys, Chinese
keys and inside free text (a note, an event's properties, a message's content, a receipt from the
provider that names other recipients too). The customer is in a segment, a journey (a message sent
to them in the sandbox, with its receipt), a staff task, the audit log and an import's rejected rows.
Then every URL of the URLconf is opened as Analyst and as Marketer (path parameters filled with the
planted objects' ids; a pattern the walk cannot fill fails the test, so a new endpoint is covered the
day it is added), the read-only POSTs (template preview, segment preview, test runs, a send), and
every websocket consumer, with events produced for that customer: none of the three values, nor
their digits-only forms, is anywhere. A Sales user (who has ``view_pii``) does see the full phone, so
the walk can fail.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from cdp.access import user_can
from cdp.asgi import application
from cdp.imports import import_run, import_start
from cdp.ingest import customer_upsert, system_events_record
from cdp.models import AuditEntry, Customer, Event, MergeReview
from cdp.realtime import publish_customers_changed
from cdp.routing import websocket_urlpatterns
from cdp.services import audit_record, note_add
from connectors.accounts import account_create
from connectors.dispatcher import dispatch_account_run
from connectors.models import Message, MessageLog
from connectors.protocol import Receipt
from connectors.receipts import receipts_apply
from connectors.services import message_enqueue, template_save
from journeys.matching import events_match
from journeys.models import Enrollment, Step
from journeys.realtime import journeys_moved
from journeys.services import staff_task_create
from segments.services import segment_save
from segments.tags import customers_tag, tag_save
from tests.asyncrun import run
from tests.connectors.conftest import CALLBACK_SECRET, in_english, sandbox_connections_closed  # noqa: F401
from tests.journeys.conftest import edge, node, published

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = "13912345678"
EMAIL = "li.lei.private@example.org"
ID_NUMBER = "110105199003071234"
OTHER_PHONE = "13722223333"  # another recipient in the same receipt batch
SECRETS = (PHONE, EMAIL, ID_NUMBER, OTHER_PHONE)
# The same values as they may be written: a phone with its country code and separators.
FREE_TEXT = f"回电 +86 139-1234-5678，邮件 {EMAIL}，身份证 {ID_NUMBER}"
TRAITS = {
    "city": "杭州",
    "phone": PHONE,
    "email": EMAIL,
    "id_number": ID_NUMBER,
    "手机号": PHONE,
    "邮箱": EMAIL,
    "身份证号": ID_NUMBER,
    "contact_phone": f"+86{PHONE}",
    "remark": FREE_TEXT,
}


def leaks(body: str) -> list[str]:
    """The planted values found in a response or message: as written, and as digits only (a phone
    printed with spaces or dashes is still the phone)."""
    digits = re.sub(r"[^0-9]", "", body)
    found = [value for value in SECRETS if value in body]
    found += [f"digits of {value}" for value in (PHONE, ID_NUMBER, OTHER_PHONE) if value in digits]
    return sorted(set(found))


@pytest.fixture(autouse=True)
def realtime_on_redis(channel_layer):
    """Every test here publishes and listens through the production layer."""


@pytest.fixture
def planted(db, user_in_role, server_source):
    """Everything a person could read about one customer, each part carrying the planted values."""
    admin = user_in_role("Admin", username="planter")
    sales = user_in_role("Sales", username="owner")
    customer, _new = customer_upsert(
        identities={"phone": PHONE, "email": EMAIL, "id_number": ID_NUMBER, "user_id": "u-4242"},
        traits=TRAITS,
    )
    customer.name = "李雷"
    customer.owner = sales
    customer.save(update_fields=["name", "owner"])
    note_add(customer=customer, author=sales, text=FREE_TEXT)
    with transaction.atomic():
        system_events_record(
            rows=[(customer.pk, "Form Submitted")],
            kind="track",
            properties={"form": "live", "手机号": PHONE, "email": EMAIL, "comment": FREE_TEXT},
            moment=timezone.now(),
            message_prefix="planted-form",
        )
    Event.objects.filter(customer=customer, name="Form Submitted").update(
        context={"traits": {"phone": PHONE, "身份证号": ID_NUMBER}, "page": {"url": f"/?tel={PHONE}"}}
    )

    tag = tag_save(key="vip", name="VIP", actor=None)
    customers_tag(customer_ids=[customer.pk], tag=tag, actor=admin)
    segment = segment_save(
        key="hangzhou", name="杭州客户", rule_data={"trait": "city", "op": "eq", "value": "杭州"}, actor=None
    )

    sms = account_create(
        kind="sandbox_sms", name="短信沙箱", values={"callback_secret": CALLBACK_SECRET}, rate_per_second=1000
    )
    template = template_save(
        key="hello-sms",
        name="问候",
        channel="sms",
        body={"template_code": "SMS_1", "params": {"all": "{{ traits }}"}, "text": "{{ traits.remark }}"},
        known_traits=set(),
        allow_unknown=True,
    )
    message, _created = message_enqueue(
        account=sms, customer=customer, idempotency_key="planted-1", template=template, origin="api"
    )
    dispatch_account_run(account_id=sms.pk)
    message.refresh_from_db()
    with transaction.atomic():
        receipts_apply(
            account=sms,
            receipts=[Receipt(provider_message_id=message.provider_message_id, status="delivered")],
            raw=json.dumps(
                [
                    {"biz_id": message.provider_message_id, "phone_number": PHONE, "report": "DELIVRD"},
                    {"biz_id": "other", "phone_number": OTHER_PHONE, "report": "DELIVRD"},
                ]
            ),
        )
    MessageLog.objects.create(
        message=message, at=timezone.now(), step="attempt", detail=f"sent to {PHONE}", raw=FREE_TEXT
    )
    Message.objects.filter(pk=message.pk).update(provider_answer=json.dumps({"to": PHONE, "echo": FREE_TEXT}))

    journey = published(
        {
            "nodes": [
                node("t1", "event_trigger", event="Form Submitted"),
                node("s1", "send", account=sms.pk, template="hello-sms", ends=["failed", "no_response"]),
                node("x1", "exit"),
            ],
            "edges": [edge("t1", "s1"), edge("s1", "x1", "delivered")],
        },
        name="直播报名",
    )
    now = timezone.now()
    enrollment = Enrollment.objects.create(
        journey=journey,
        version=journey.versions.get(),
        customer=customer,
        entry_key=f"form:{PHONE}",
        node_id="s1",
        context={"手机号": PHONE, "comment": FREE_TEXT},
        reason=f"waiting for {PHONE}",
        enrolled_at=now,
    )
    Step.objects.create(
        enrollment=enrollment,
        journey=journey,
        node_id="s1",
        node_type="send",
        visit=1,
        reason=f"message {message.pk} to {PHONE}",
        entered_at=now,
    )
    Message.objects.filter(pk=message.pk).update(
        journey_id=journey.pk, enrollment_id=enrollment.pk, node_id="s1"
    )

    task, _created = staff_task_create(
        customer=customer,
        title=f"回访 {PHONE}",
        note=FREE_TEXT,
        due_at=now + dt.timedelta(days=1),
        assignee=sales,
        journey_id=journey.pk,
        node_id="s1",
    )
    staff_task_create(  # nobody's: anyone who works on tasks sees it
        customer=customer, title=f"回访 {PHONE}", note=FREE_TEXT, due_at=now + dt.timedelta(hours=2)
    )
    audit_record(actor=admin, action="customer.note", target=customer, details={"text": FREE_TEXT})
    job = import_start(
        upload=SimpleUploadedFile(
            "客户.csv", f"phone,email,name,id_number\nnot-a-phone,{EMAIL},{FREE_TEXT},{ID_NUMBER}\n".encode()
        ),
        kind="customers",
        actor=admin,
    )
    import_run(job_id=job.pk)

    twin, _new = customer_upsert(identities={"user_id": "u-twin"}, traits={"remark": FREE_TEXT})
    review = MergeReview.objects.create(first=customer, second=twin, reason=f"same phone {PHONE}")
    return {
        "customer": customer,
        "sales": sales,
        "role": sales.groups.get(),
        "segment": segment,
        "tag": tag,
        "account": sms,
        "template": template,
        "message": message,
        "journey": journey,
        "enrollment": enrollment,
        "task": task,
        "job": job,
        "review": review,
        "audit": AuditEntry.objects.latest("id"),
        "admin": admin,
        "source": server_source,
    }


# -- every URL -------------------------------------------------------------------------------------


def url_patterns(resolver=None, prefix=""):
    for pattern in (resolver or get_resolver()).url_patterns:
        if isinstance(pattern, URLResolver):
            yield from url_patterns(pattern, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def _parameters(route: str, pattern: URLPattern) -> list[str]:
    return list(pattern.pattern.regex.groupindex) or re.findall(r"<(?:\w+:)?(\w+)>", route)


def _values(planted) -> dict[str, object]:
    """A value for each path parameter the URLconf uses: ``name`` for every route, or
    ``route name:parameter`` where one name means different things."""
    customer = planted["customer"]
    return {
        "customer_id": customer.pk,
        "segment_id": planted["segment"].pk,
        "tag_id": planted["tag"].pk,
        "journey_id": planted["journey"].pk,
        "node_id": "s1",
        "message_id": planted["message"].pk,
        "account_id": planted["account"].pk,
        "template_id": planted["template"].pk,
        "task_id": planted["task"].pk,
        "job_id": planted["job"].pk,
        "review_id": planted["review"].pk,
        "user_id": planted["sales"].pk,
        "role_id": planted["role"].pk,
        "source_id": planted["source"].pk,
        "batch_id": 1,
        "log_id": 1,
        "stage_id": 1,
        "rule_id": 1,
        "action": "pause",
        "channel": "sms",
        "kind": "sandbox_sms",
        "code": "nolink",
        "token": "notatoken",
        "uidb64": "MQ",
        "message_template_new:channel": "sms",
        "api_contact_policy:channel": "sms",
        "key": "vip",
        "api_tag:key": "vip",
        "api_tag_customers:key": "vip",
        "api_tag_merge:key": "vip",
        "api_stage:key": "lead",
        "journey_template_use:key": "live-stream-signup",
        "api_journey_template_use:key": "live-stream-signup",
    }


def filled_urls(planted) -> list[str]:
    """Every route of the URLconf with its parameters filled; fails naming the routes it cannot."""
    values = _values(planted)
    urls, unfillable = [], []
    for route, pattern in url_patterns():
        kwargs = {
            parameter: values.get(f"{pattern.name}:{parameter}", values.get(parameter))
            for parameter in _parameters(route, pattern)
        }
        missing = [parameter for parameter, value in kwargs.items() if value is None]
        if missing or pattern.name is None:
            unfillable.append(f"{route} ({', '.join(missing) or 'no name'})")
        else:
            urls.append(reverse(pattern.name, kwargs=kwargs))
    assert unfillable == [], f"the walk cannot fill these routes; give their parameters a value: {unfillable}"
    return urls


def extra_reads(planted) -> list[str]:
    """The same pages asked the ways people filter them (by customer, by the phone itself)."""
    customer, message = planted["customer"], planted["message"]
    return [
        f"{reverse('customers')}?q=李雷",
        f"{reverse('customer_timeline', args=[customer.pk])}?channel=server",
        f"{reverse('customer_timeline', args=[customer.pk])}?since=0",  # the live rows
        f"{reverse('api_customers')}?q=李雷",
        f"{reverse('messages')}?customer=%23{customer.pk}",
        f"{reverse('api_messages')}?customer={customer.pk}",
        f"{reverse('api_message', args=[message.pk])}",
        f"{reverse('api_journey_enrollments', args=[planted['journey'].pk])}?node=s1",
        f"{reverse('journey_node', args=[planted['journey'].pk, 's1'])}",
        f"{reverse('segment_members', args=[planted['segment'].pk])}",
        f"{reverse('settings_audit')}?q=customer",
    ]


def read_posts(planted) -> list[tuple[str, dict, str]]:
    """The POSTs that only read: previews, test runs, a send whose answer echoes the content."""
    customer, journey = planted["customer"], planted["journey"]
    everything = "{{ traits }} {{ event }} {{ customer.phone }} {{ traits.手机号 }}"
    return [
        (
            reverse("message_template_preview", args=["sms"]),
            {"text": everything, "preview_customer": f"#{customer.pk}"},
            "form",
        ),
        (
            reverse("api_segment_preview"),
            {"rule": {"trait": "city", "op": "eq", "value": "杭州"}},
            "json",
        ),
        (reverse("journey_test", args=[journey.pk]), {"customer": f"#{customer.pk}"}, "form"),
        (
            reverse("api_journey_test", args=[journey.pk]),
            {"customer_id": customer.pk, "context": {}},
            "json",
        ),
        (
            reverse("api_messages"),
            {
                "account": planted["account"].pk,
                "customer": f"#{customer.pk}",
                "idempotency_key": "walk",
                "body": {"template_code": "SMS_1", "text": everything},
            },
            "json",
        ),
    ]


def walk(client, planted) -> dict[str, list[str]]:
    found = {}
    opened = 0
    client.raise_request_exception = False  # a server error is reported with the rest, not alone
    for url in [*filled_urls(planted), *extra_reads(planted)]:
        for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
            response = client.get(url, HTTP_ACCEPT_LANGUAGE="en", **headers)
            if response.status_code == 500:  # /healthz answers 503 with no worker: fine
                found[f"GET {url}"] = ["server error"]
                continue
            body = b"".join(response.streaming_content) if response.streaming else response.content
            leaked = leaks(body.decode("utf-8-sig", errors="replace"))
            if leaked:
                found[f"GET {url}"] = leaked
            opened += response.status_code == 200
    for url, data, kind in read_posts(planted):
        if kind == "json":
            response = client.post(url, data, content_type="application/json", HTTP_ACCEPT_LANGUAGE="en")
        else:
            response = client.post(url, data, HTTP_ACCEPT_LANGUAGE="en")
        if response.status_code == 500:
            found[f"POST {url}"] = ["server error"]
            continue
        leaked = leaks(response.content.decode())
        if leaked:
            found[f"POST {url}"] = leaked
    assert opened > 40  # the walk read real pages, not a row of refusals
    return found


def everything_but_pii(user_in_role):
    """A role an admin might make: every capability (audit log, channels and their sandbox, imports,
    tasks, users) except ``view_pii``: masking follows the capability, not the role's name."""
    user_in_role("Admin")  # the capabilities exist
    group = Group.objects.create(name="Everything but personal data")
    group.permissions.set(
        Permission.objects.filter(content_type__app_label="cdp", content_type__model="capability").exclude(
            codename="view_pii"
        )
    )
    return user_in_role(group.name)


@pytest.mark.parametrize("role", ["Analyst", "Marketer", "everything but view_pii"])
def test_no_page_api_export_or_preview_shows_a_planted_phone_email_or_id_number(
    client, user_in_role, planted, role
):
    user = everything_but_pii(user_in_role) if role.startswith("everything") else user_in_role(role)
    assert not user_can(user, "view_pii")
    client.force_login(user)
    assert walk(client, planted) == {}


def test_a_route_the_walk_cannot_fill_fails_it_by_name(settings):
    settings.ROOT_URLCONF = "tests.cdp.unfillable_urls"
    anything = defaultdict(lambda: SimpleNamespace(pk=1))
    with pytest.raises(AssertionError, match=re.escape("['reports/<int:report_id>/ (report_id)']")):
        filled_urls(anything)


def test_a_sales_user_with_view_pii_sees_the_full_phone_so_the_walk_can_fail(client, planted):
    client.force_login(planted["sales"])
    profile = client.get(reverse("customer", args=[planted["customer"].pk])).content.decode()
    assert PHONE in profile and EMAIL in profile
    assert PHONE in client.get(reverse("message", args=[planted["message"].pk])).content.decode()


def test_the_walk_covers_every_websocket_consumer():
    assert [str(pattern.pattern) for pattern in websocket_urlpatterns] == [
        "ws/notifications/",
        "ws/customers/live/",
        "ws/journeys/<int:journey_id>/live/",
    ], "a new consumer: add it to the websocket walk below"


@pytest.mark.parametrize("role", ["Analyst", "Marketer"])
def test_no_websocket_message_carries_a_planted_value(client, user_in_role, planted, role):
    user = user_in_role(role)
    client.force_login(user)
    headers = [
        (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
        (b"origin", b"http://testserver"),
    ]
    customer, journey = planted["customer"], planted["journey"]

    def produce():
        with transaction.atomic():
            system_events_record(
                rows=[(customer.pk, "Form Submitted")],
                kind="track",
                properties={"手机号": PHONE, "comment": FREE_TEXT},
                moment=timezone.now(),
                message_prefix="walk-live",
            )
        publish_customers_changed([customer.pk])
        journeys_moved([journey.pk])
        from cdp.realtime import notify_user

        notify_user(user_id=user.pk, kind="note", message="Changes saved.", data={"customer": customer.pk})

    async def listen() -> list[str]:
        sockets = [
            WebsocketCommunicator(application, path, headers=headers)
            for path in ("/ws/notifications/", "/ws/customers/live/", f"/ws/journeys/{journey.pk}/live/")
        ]
        for socket in sockets:
            connected, _protocol = await socket.connect(timeout=5)
            assert connected
        try:
            await sync_to_async(produce)()
            received = [await socket.receive_from(timeout=5) for socket in sockets]
        finally:
            for socket in sockets:
                await socket.disconnect()
        return received

    received = run(listen())
    assert all(received)
    assert [leaks(text) for text in received] == [[], [], []]


# -- the review's proofs for finding 1, one by one ------------------------------------------------


MASKED_PHONE = "139****5678"


def preview(client, customer_query: str, text: str = "{{ traits }} {{ event }}"):
    return client.post(
        reverse("message_template_preview", args=["wecom"]),
        {"text": text, "preview_customer": customer_query},
        HTTP_ACCEPT_LANGUAGE="en",
    )


def test_an_analyst_previewing_traits_for_a_customer_is_refused(client, user_in_role, planted):
    client.force_login(user_in_role("Analyst"))
    answer = preview(client, f"#{planted['customer'].pk}")
    assert answer.status_code == 403
    assert leaks(answer.content.decode()) == []


def test_a_marketer_previewing_traits_reads_them_masked_and_looping_over_ids_gives_nothing(
    client, user_in_role, planted
):
    client.force_login(user_in_role("Marketer"))
    customer = planted["customer"]
    shown = preview(client, f"#{customer.pk}").content.decode()
    assert MASKED_PHONE in shown and "l****@example.org" in shown  # it did render this customer's traits
    # A template cannot put the phone back together from pieces of the masked value either.
    pieces = preview(
        client, f"#{customer.pk}", "{{ traits.phone[:3] }}-{{ traits.phone[3:] }}"
    ).content.decode()
    assert leaks(pieces) == []
    for customer_id in [*Customer.objects.values_list("pk", flat=True), customer.pk + 1]:
        assert leaks(preview(client, f"#{customer_id}").content.decode()) == [], customer_id
        single = preview(
            client, f"#{customer_id}", "{{ customer.phone }} {{ traits.手机号 }} {{ traits.身份证号 }}"
        )
        assert leaks(single.content.decode()) == [], customer_id


def test_a_message_page_and_api_show_content_answers_and_receipts_masked_to_an_analyst(
    client, user_in_role, planted
):
    message = planted["message"]
    client.force_login(user_in_role("Analyst"))
    page = client.get(reverse("message", args=[message.pk])).content.decode()
    detail = client.get(reverse("api_message", args=[message.pk])).json()
    listed = client.get(reverse("api_messages"), {"customer": planted["customer"].pk}).json()
    for shown in (page, json.dumps(detail, ensure_ascii=False), json.dumps(listed, ensure_ascii=False)):
        assert leaks(shown) == []
    # still there, masked: the receipt (with the other recipient of the batch), the answer, the content
    receipt = next(step["raw"] for step in detail["life"] if step["step"] == "receipt")
    assert "137****3333" in receipt and MASKED_PHONE in receipt
    assert MASKED_PHONE in detail["provider_answer"]
    assert MASKED_PHONE in json.dumps(detail["content"], ensure_ascii=False)
    assert detail["recipient"] == "+86 139****5678"


def test_sending_by_hand_answers_with_the_content_masked_but_sends_it_whole(client, user_in_role, planted):
    client.force_login(user_in_role("Marketer"))
    answer = client.post(
        reverse("api_messages"),
        {
            "account": planted["account"].pk,
            "customer": f"#{planted['customer'].pk}",
            "idempotency_key": "x",
            "body": {"template_code": "SMS_1", "text": "{{ traits }}"},
        },
        content_type="application/json",
    )
    assert answer.status_code == 201
    assert leaks(answer.content.decode()) == []
    assert MASKED_PHONE in answer.json()["content"]["text"]
    assert PHONE in Message.objects.get(idempotency_key="x").content["text"]  # the customer gets it whole


def test_a_journey_test_run_shows_a_marketer_the_recipient_masked(client, user_in_role, planted):
    client.force_login(user_in_role("Marketer"))
    journey, customer = planted["journey"], planted["customer"]
    run_api = client.post(
        reverse("api_journey_test", args=[journey.pk]),
        {"customer_id": customer.pk, "context": {"comment": FREE_TEXT}},
        content_type="application/json",
    )
    assert run_api.status_code == 200
    (sent,) = run_api.json()["messages"]
    assert sent["recipient"] == "+86 139****5678"
    assert leaks(run_api.content.decode()) == []
    page = client.post(reverse("journey_test", args=[journey.pk]), {"customer": f"#{customer.pk}"})
    assert page.status_code == 200 and leaks(page.content.decode()) == []


def test_the_rule_vocabulary_offers_an_analyst_no_phone_email_or_id_number(client, user_in_role, planted):
    client.force_login(user_in_role("Analyst"))
    vocabulary = client.get(reverse("api_segment_vocabulary"))
    assert vocabulary.status_code == 200
    assert leaks(vocabulary.content.decode()) == []
    builder = client.get(reverse("segment_edit", args=[planted["segment"].pk]))
    assert leaks(builder.content.decode()) == []


def test_chinese_keys_other_spellings_and_free_text_are_masked_on_the_timeline_and_events_api(
    client, user_in_role, planted
):
    customer = planted["customer"]
    client.force_login(user_in_role("Analyst"))
    events = client.get(reverse("api_customer_events", args=[customer.pk])).json()
    form = next(event for event in events["results"] if event["name"] == "Form Submitted")
    assert form["properties"]["手机号"] == MASKED_PHONE
    assert MASKED_PHONE in form["properties"]["comment"] and ID_NUMBER not in form["properties"]["comment"]
    profile = client.get(reverse("customer", args=[customer.pk])).content.decode()
    assert leaks(profile) == [] and MASKED_PHONE in profile


class EchoingReceiver(BaseHTTPRequestHandler):
    """The company's system a marketer's webhook step calls: it answers with what it got, traits and
    all, as a careless endpoint might."""

    received: list[dict] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        EchoingReceiver.received.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_webhook_step_sends_the_traits_out_but_keeps_and_shows_nothing_of_them(
    client, user_in_role, planted, settings
):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # our fake of the company's system
    settings.OUTBOUND_ALLOWED_PORTS = ["1024-65535"]
    EchoingReceiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        journey = published(
            {
                "nodes": [
                    node("t1", "event_trigger", event="lead_created"),
                    node(
                        "w1",
                        "call_webhook",
                        url=f"http://127.0.0.1:{server.server_address[1]}/crm",
                        ends=["success", "failed"],
                    ),
                ],
                "edges": [edge("t1", "w1")],
            },
            name="线索同步",
        )
        customer = planted["customer"]
        with transaction.atomic():
            system_events_record(
                rows=[(customer.pk, "lead_created")],
                kind="track",
                properties={"手机号": PHONE},
                moment=timezone.now(),
                message_prefix="lead",
            )
        events_match(customer_ids=[customer.pk])
    finally:
        server.shutdown()
        server.server_close()
    (sent,) = EchoingReceiver.received
    assert sent["customer"]["traits"]["phone"] == PHONE  # by design: the journey's manager chose the URL
    step = Step.objects.get(journey=journey, node_id="w1")
    assert (step.outcome, step.reason) == ("success", "HTTP 200")  # the answer itself is not kept
    client.force_login(user_in_role("Marketer"))
    for url in (
        reverse("journey", args=[journey.pk]),
        reverse("journey_node", args=[journey.pk, "w1"]),
        reverse("api_journey_enrollments", args=[journey.pk]),
        reverse("api_journey_stats", args=[journey.pk]),
        reverse("customer", args=[customer.pk]),
    ):
        assert leaks(client.get(url).content.decode()) == [], url
