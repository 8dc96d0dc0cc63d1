"""Review finding 5: ID numbers are stored as their keyed hash in every event, whichever way they came
in (the open API's upsert, a CSV import, a tracked event), under English and Chinese keys and inside
free text; and failed tracking requests leave the database after their retention."""

import datetime as dt

import pytest
import time_machine
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

from cdp.identity import hash_sensitive
from cdp.imports import import_run
from cdp.ingest import MAX_ATTEMPTS
from cdp.models import Identity, ImportJob, IngestBatch
from cdp.services import api_token_rotate
from tests.cdp.test_identity import send

UPSERTED = "110105194912310021"
IMPORTED = "11010519491231002X"
TRACKED = "440106198001011234"
IN_TEXT = "310101199001011237"


def events_holding(value: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM cdp_event WHERE properties::text ILIKE %s OR context::text ILIKE %s",
            [f"%{value}%", f"%{value}%"],
        )
        return cursor.fetchone()[0]


def test_no_id_number_is_stored_in_clear_in_any_event(client, admin_user, server_source):
    token = api_token_rotate(user=admin_user)
    upserted = client.post(
        "/api/customers/",
        {"identities": {"id_number": UPSERTED, "user_id": "erp-1"}, "traits": {"city": "杭州"}},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {token.key}",
    )
    assert upserted.status_code == 201

    client.force_login(admin_user)
    csv_file = SimpleUploadedFile(
        "客户.csv",
        f"phone,id_number,name\n13800138000,{IMPORTED.lower()},王强\n".encode(),
        content_type="text/csv",
    )
    assert client.post(reverse("imports"), {"kind": "customers", "file": csv_file}).status_code == 302
    import_run(job_id=ImportJob.objects.get().pk)

    send(
        server_source,
        {
            "userId": "u-3",
            "event": "Form Submitted",
            "properties": {"身份证号": TRACKED, "note": f"客户说证件号是 {IN_TEXT}，请核对", "city": "深圳"},
            "context": {
                "traits": {"id_number": TRACKED, "phone": "+8613900139000"},
                "externalIds": [{"type": "id_number", "id": TRACKED, "collection": "users"}],
            },
        },
    )

    for number in (UPSERTED, IMPORTED, TRACKED, IN_TEXT):
        assert events_holding(number) == 0, number
    # Stored as the identity table's hash, so an event still matches its customer's ID number.
    for number in (UPSERTED, IMPORTED, TRACKED):
        assert Identity.objects.filter(type="id_number", value=hash_sensitive(number)).exists()
        assert events_holding(hash_sensitive(number)) >= 1, number
    assert events_holding(hash_sensitive(IN_TEXT)) == 1
    # Phones stay: they identify customers and are masked where people read them.
    assert events_holding("+8613900139000") == 1


@pytest.mark.django_db
def test_failed_tracking_requests_are_deleted_after_their_retention(server_source):
    from cdp.tasks import ingest_failed_expire

    start = dt.datetime(2026, 11, 1, 10, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False) as clock:
        failed = IngestBatch.objects.create(
            source=server_source,
            received_at=start,
            events=[{"context": {"traits": {"id_number": TRACKED}}}],
            event_count=1,
            attempts=MAX_ATTEMPTS,
            error="KeyError: 'kind'",
        )
        pending = IngestBatch.objects.create(
            source=server_source, received_at=start, events=[], event_count=0, attempts=3
        )
        clock.shift(dt.timedelta(days=settings.INGEST_FAILED_RETENTION_DAYS - 1))
        assert ingest_failed_expire() == 0
        clock.shift(dt.timedelta(days=1, seconds=1))
        assert ingest_failed_expire() == 1
    assert list(IngestBatch.objects.values_list("pk", flat=True)) == [pending.pk]
    assert not IngestBatch.objects.filter(pk=failed.pk).exists()
    entry = settings.CELERY_BEAT_SCHEDULE["ingest-failed-expire"]
    assert (entry["task"], entry["options"]["expire_seconds"]) == ("cdp.tasks.ingest_failed_expire", 3600)
