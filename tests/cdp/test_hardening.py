"""Hostile or odd input is refused cleanly; failures never block the queue; PII stays masked."""

import base64
import gzip
import json

import pytest
from django.urls import reverse

from cdp.imports import import_run
from cdp.ingest import batches_process, inbox_store
from cdp.merge import customers_merge, customers_unmerge
from cdp.models import Consent, Customer, Event, ImportJob, IngestBatch, Note
from cdp.services import api_token_rotate, consent_set
from tests.cdp.test_identity import send


def post_raw(client, source, data: bytes, **extra):
    token = base64.b64encode(f"{source.write_key}:".encode()).decode()
    return client.post(
        "/v1/batch", data=data, content_type="application/json", HTTP_AUTHORIZATION=f"Basic {token}", **extra
    )


def test_a_gzip_bomb_is_refused_without_inflating_it(client, source):
    bomb = gzip.compress(b'{"batch": [' + b" " * 50_000_000 + b"]}")
    response = post_raw(client, source, bomb, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 413
    assert post_raw(client, source, b"not gzip", HTTP_CONTENT_ENCODING="gzip").status_code == 400


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"batch": [{"type": "track", "userId": "u", "event": "X", "properties": {"v": NaN}}]}',
            "not valid JSON",
        ),
        (b'{"batch": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
        (b'{"batch": [{"type": "track", "userId": "u\\u0000", "event": "X"}]}', "NUL character"),
        (
            b'{"batch": [{"type": "track", "userId": "u", "event": "X", '
            b'"timestamp": "0001-01-01T00:00:00+08:00"}]}',
            "out of range",
        ),
    ],
)
def test_odd_json_gets_a_400_with_the_reason(client, source, body, message):
    response = post_raw(client, source, body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert IngestBatch.objects.count() == 0


def test_odd_shapes_inside_context_are_stored_and_processed(client, server_source):
    body = {
        "batch": [
            {
                "type": "track",
                "userId": "u-odd",
                "event": "X",
                "context": {
                    "app": "3.1",
                    "externalIds": [{"type": ["phone"], "id": 1}],
                    "traits": {"openid": "o-1", "appid": "x" * 60},
                },
            }
        ]
    }
    assert post_raw(client, server_source, json.dumps(body).encode()).status_code == 200
    assert batches_process() == 1
    assert Event.objects.get().customer.identities.get().value == "u-odd"


def test_a_failing_batch_counts_attempts_and_does_not_block_the_others(source):
    broken = inbox_store(source=source, events=[{"kind": "track", "messageId": "m-1"}])  # no name, no time
    send(source, {"userId": "fine", "event": "Works"})
    assert Event.objects.filter(name="Works").exists()
    broken.refresh_from_db()
    assert broken.attempts >= 1 and "KeyError" in broken.error  # still in the inbox


def test_one_bad_request_in_a_group_costs_only_itself_an_attempt(source):
    def good(number):
        return inbox_store(
            source=source,
            enqueue=False,
            events=[
                {
                    "kind": "track",
                    "name": "Works",
                    "messageId": f"good-{number}",
                    "userId": f"person-{number % 3}",
                    "anonymousId": None,
                    "timestamp": "2026-11-20T10:00:00+08:00",
                    "properties": {},
                    "context": {},
                    "traits": {},
                }
            ],
        )

    goods = [good(number) for number in range(3)]
    broken = inbox_store(source=source, enqueue=False, events=[{"kind": "track", "messageId": "bad"}])
    goods += [good(number) for number in range(3, 6)]

    assert batches_process() == 6
    assert Event.objects.filter(name="Works").count() == 6
    assert Customer.objects.filter(merged_into=None).count() == 3
    assert not IngestBatch.objects.filter(pk__in=[b.pk for b in goods]).exists()  # done: out of the inbox
    broken.refresh_from_db()
    assert broken.attempts == 1  # still in the inbox
    assert "KeyError" in broken.error


def test_processed_requests_leave_the_inbox_with_their_raw_payload(source):
    send(source, {"userId": "u", "event": "X", "context": {"traits": {"id_number": "110105194912310021"}}})
    assert Event.objects.filter(name="X").exists()
    assert not IngestBatch.objects.exists()


def test_merging_keeps_notes_and_the_newest_consent(source, admin_user):
    send(source, {"userId": "a", "event": "X"}, {"userId": "b", "event": "Y"})
    first, second = Customer.objects.order_by("pk")
    consent_set(customer=first, channel="sms", subscribed=True, origin="form")
    consent_set(customer=second, channel="sms", subscribed=False, origin="回复TD")
    Note.objects.create(customer=second, author=admin_user, text="老客户")
    customers_merge(survivor_id=first.pk, merged_id=second.pk, reason="manual")
    assert Consent.objects.get(customer=first, channel="sms").status == "unsubscribed"
    assert Note.objects.get().customer == first


def test_undoing_a_merge_gives_back_the_notes_and_consent_that_came_with_it(source, admin_user):
    send(source, {"userId": "a", "event": "X"}, {"userId": "b", "event": "Y"})
    first, second = Customer.objects.order_by("pk")
    consent_set(customer=first, channel="sms", subscribed=True, origin="form")
    consent_set(customer=second, channel="sms", subscribed=False, origin="回复TD")
    consent_set(customer=second, channel="email", subscribed=True, origin="newsletter")
    note = Note.objects.create(customer=second, author=admin_user, text="老客户")
    log = customers_merge(survivor_id=first.pk, merged_id=second.pk, reason="manual")
    assert set(Consent.objects.filter(customer=second).values_list("channel", flat=True)) == set()

    customers_unmerge(log=log, actor=admin_user)
    note.refresh_from_db()
    assert note.customer == second
    restored = {c.channel: (c.status, c.origin) for c in Consent.objects.filter(customer=second)}
    assert restored == {"sms": ("unsubscribed", "回复TD"), "email": ("subscribed", "newsletter")}
    # The survivor keeps the newest decisions it saw while the two were one.
    assert Consent.objects.get(customer=first, channel="sms").status == "unsubscribed"


def test_manual_merge_refuses_a_name_or_an_ambiguous_identifier(client, user_in_role, server_source):
    send(
        server_source,
        {"kind": "identify", "userId": "p1", "traits": {"name": "王一"}},
        {"kind": "identify", "userId": "p2", "traits": {"name": "王二"}},
        {"kind": "identify", "userId": "p3", "traits": {"name": "王三"}},
    )
    target = Customer.objects.get(identities__value="p1")
    client.force_login(user_in_role("Sales"))
    response = client.post(
        reverse("customer_merge", args=[target.pk]), {"other": "王"}, follow=True, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert "No other customer matches" in response.content.decode()
    assert Customer.objects.filter(merged_into=None).count() == 3


def test_roles_without_view_pii_never_see_phones_or_id_numbers_in_the_api(client, user_in_role, source):
    send(
        source,
        {
            "kind": "identify",
            "userId": "pii",
            "traits": {"mobile": "13800138000", "idNumber": "110105194912310021"},
        },
        {
            "userId": "pii",
            "event": "Called",
            "context": {
                "traits": {"phone": "13800138000"},
                "externalIds": [{"type": "phone", "id": "13800138000"}],
            },
        },
    )
    customer = Customer.objects.get()
    token = api_token_rotate(user=user_in_role("Marketer"))
    headers = {"HTTP_AUTHORIZATION": f"Token {token.key}"}
    profile = json.dumps(client.get(reverse("api_customer", args=[customer.pk]), **headers).json())
    events = json.dumps(client.get(reverse("api_customer_events", args=[customer.pk]), **headers).json())
    for text in (profile, events):
        assert "13800138000" not in text and "110105" not in text
    assert "138****8000" in profile


def test_the_live_timeline_includes_late_dated_events(client, user_in_role, source):
    send(source, {"userId": "t", "event": "Now", "timestamp": "2026-11-23T10:00:00Z"})
    customer = Customer.objects.get()
    newest_id = Event.objects.get().pk
    send(source, {"userId": "t", "event": "Offline Event", "timestamp": "2026-11-01T10:00:00Z"})
    client.force_login(user_in_role("Sales"))
    html = client.get(reverse("customer_timeline", args=[customer.pk]), {"since": newest_id}).content.decode()
    assert "Offline Event" in html and "Now" not in html


def test_rerunning_an_import_stores_nothing_twice(client, admin_user):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(admin_user)
    csv_file = SimpleUploadedFile(
        "c.csv", "phone,name\n13800138000,王\n13900139000,李\n".encode(), "text/csv"
    )
    client.post(reverse("imports"), {"kind": "customers", "file": csv_file})
    job = ImportJob.objects.get()
    import_run(job_id=job.pk)
    ImportJob.objects.filter(pk=job.pk).update(status="queued")  # as if the worker died and it ran again
    import_run(job_id=job.pk)
    assert Event.objects.count() == 2
    assert Customer.objects.count() == 2
