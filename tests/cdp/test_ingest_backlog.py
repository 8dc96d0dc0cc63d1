"""Requests the workers gave up on are visible to admins, who retry or discard them."""

import pytest
from django.urls import reverse

from cdp.ingest import MAX_ATTEMPTS, batches_process, inbox_store
from cdp.models import AuditEntry, Event, IngestBatch


def broken_request(source):
    return inbox_store(source=source, enqueue=False, events=[{"kind": "track", "messageId": "no-time"}])


def fail_for_good(batch):
    for _attempt in range(MAX_ATTEMPTS):
        batches_process(batch_ids=[batch.pk])
    batch.refresh_from_db()
    assert batch.attempts == MAX_ATTEMPTS  # still in the inbox


@pytest.fixture
def admin(client, user_in_role):
    client.force_login(user_in_role("Admin"))
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def test_the_sources_page_says_what_waits_and_what_failed(admin, source):
    page = admin.get(reverse("settings_sources")).content.decode()
    assert "Every accepted request has been processed." in page

    fail_for_good(broken_request(source))
    inbox_store(source=source, enqueue=False, events=[{"kind": "track", "messageId": "later"}] * 3)
    page = admin.get(reverse("settings_sources")).content.decode()
    assert "1 accepted request (3 events) is waiting for the ingest workers." in page
    assert f"1 request failed {MAX_ATTEMPTS} times and waits for you" in page
    assert "KeyError: &#x27;timestamp&#x27;" in page or "KeyError: 'timestamp'" in page


def test_retry_gives_fresh_attempts_and_discard_drops_the_payload(admin, source):
    batch = broken_request(source)
    fail_for_good(batch)

    admin.post(reverse("settings_batch_retry", args=[batch.pk]))
    batch.refresh_from_db()
    assert batch.attempts == 0
    assert AuditEntry.objects.filter(action="ingest.retry", target_id=str(batch.pk)).exists()

    fail_for_good(batch)  # still broken: the cause was not fixed
    response = admin.post(reverse("settings_batch_discard", args=[batch.pk]), follow=True)
    assert "were discarded" in response.content.decode()
    assert not IngestBatch.objects.filter(pk=batch.pk).exists()
    assert not Event.objects.exists()
    entry = AuditEntry.objects.get(action="ingest.discard", target_id=str(batch.pk))
    assert "KeyError" in entry.details["error"]
    assert (
        "Every accepted request has been processed."
        in admin.get(reverse("settings_sources")).content.decode()
    )


def test_only_people_who_manage_data_may_retry_or_discard(client, user_in_role, source):
    batch = broken_request(source)
    client.force_login(user_in_role("Marketer"))
    assert client.post(reverse("settings_batch_discard", args=[batch.pk])).status_code == 403
    assert IngestBatch.objects.filter(pk=batch.pk).exists()


def test_a_race_in_the_writers_statements_is_counted_as_a_race_and_loses_nothing(
    server_source, monkeypatch, caplog
):
    """A group whose writes collide with another writer's (here: the identifier it is about to add,
    taken meanwhile) is undone whole and kept for the next try, logged as a race, not as a bug."""
    from cdp import ingest
    from cdp.models import Customer, Identity

    other = Customer.objects.create(name="someone else")
    load = ingest._Resolver.load

    def load_then_taken(self, items):
        load(self, items)
        Identity.objects.get_or_create(
            type="user_id", value="u-race", defaults={"customer": other, "first_seen_at": self.now}
        )

    monkeypatch.setattr(ingest._Resolver, "load", load_then_taken)
    message = {
        "kind": "track",
        "name": "Product Viewed",
        "messageId": "race-1",
        "userId": "u-race",
        "anonymousId": None,
        "timestamp": "2026-11-20T10:00:00+08:00",
        "properties": {},
        "context": {},
        "traits": {},
    }
    batch = inbox_store(source=server_source, enqueue=False, events=[message])
    assert batches_process(batch_ids=[batch.pk]) == 0
    batch.refresh_from_db()
    assert batch.attempts == 1 and batch.error.startswith("IntegrityError")
    assert "raced another worker" in caplog.text
    assert not Event.objects.filter(message_id="race-1").exists()

    monkeypatch.setattr(ingest._Resolver, "load", load)  # the next try meets no other writer
    assert batches_process(batch_ids=[batch.pk]) == 1
    assert Event.objects.get(message_id="race-1").customer.identities.filter(value="u-race").exists()
    assert not IngestBatch.objects.filter(pk=batch.pk).exists()
