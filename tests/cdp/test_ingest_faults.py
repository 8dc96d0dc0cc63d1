"""Faults with real processes: a killed ingest worker loses nothing, parallel merges end in one customer,
a request replayed while its first copy is processed is stored once."""

import signal
import time

import pytest

from cdp.celery import app as celery_app
from cdp.ingest import batches_process, inbox_store
from cdp.models import Customer, CustomerEventStats, Event, EventKey, IngestBatch
from tests.processes import ProcessGroup, current_database_url, wait_until

# Enough that the worker is still busy when it is killed (it commits groups of GROUP_BATCHES).
BATCHES, PER_BATCH = 200, 100


def accepted_batches(source, prefix: str, count: int, per_batch: int) -> None:
    for batch in range(count):
        inbox_store(
            source=source,
            events=[
                {
                    "kind": "track",
                    "name": "Product Viewed",
                    "messageId": f"{prefix}-{batch}-{index}",
                    "userId": f"{prefix}-user-{(batch * per_batch + index) % 500}",
                    "anonymousId": None,
                    "timestamp": "2026-11-20T10:00:00+08:00",
                    "properties": {"price": 10},
                    "context": {},
                    "traits": {},
                }
                for index in range(per_batch)
            ],
        )


@pytest.fixture
def workers(redis_url, tmp_path, transactional_db, monkeypatch):
    monkeypatch.setitem(celery_app.conf, "broker_url", redis_url)
    group = ProcessGroup({"DATABASE_URL": current_database_url(), "CELERY_BROKER_URL": redis_url}, tmp_path)
    yield group
    group.stop_all()


def start_worker(group, name):
    group.start(name, "celery", "-A", "cdp", "worker", "--pool", "solo", "-Q", "ingest", "--loglevel", "INFO")


def test_a_worker_killed_mid_batch_loses_no_accepted_event(workers, source):
    from cdp.tasks import ingest_batches

    accepted_batches(source, "kill", BATCHES, PER_BATCH)
    start_worker(workers, "first")
    for _sweep in range(3):
        ingest_batches.delay()  # what beat's sweep sends
    wait_until(
        lambda: IngestBatch.objects.count() <= BATCHES - 10,  # done requests leave the inbox
        timeout=120,
        what="the first worker to process some batches",
    )
    workers.kill("first", signal.SIGKILL)
    assert IngestBatch.objects.exists()

    start_worker(workers, "second")
    wait_until(
        lambda: ingest_batches.delay() and not IngestBatch.objects.exists(),
        timeout=180,
        what="the second worker to finish the batches",
    )
    assert Event.objects.count() == BATCHES * PER_BATCH
    assert EventKey.objects.count() == BATCHES * PER_BATCH
    assert sum(CustomerEventStats.objects.values_list("count", flat=True)) == BATCHES * PER_BATCH
    assert Customer.objects.filter(merged_into=None).count() == 500


BATCH_AT_SCRIPT = """
import sys, time, django
django.setup()
from cdp.ingest import batches_process
start_at, batch_id = float(sys.argv[1]), int(sys.argv[2])
time.sleep(max(0, start_at - time.time()))  # both processes start at the same moment
batches_process(batch_ids=[batch_id])
"""


def test_parallel_merges_a_into_b_and_b_into_c_end_with_one_customer(workers, source):
    for round_number in range(4):
        people = [f"r{round_number}-{letter}" for letter in "abc"]
        for person in people:
            inbox_store(source=source, events=[message(person, [person], f"{person}-seen")])
        batches_process()
        assert Customer.objects.filter(merged_into=None, identities__value__in=people).count() == 3

        first = inbox_store(source=source, events=[message(people[0], people[:2], f"r{round_number}-ab")])
        second = inbox_store(source=source, events=[message(people[1], people[1:], f"r{round_number}-bc")])
        start_at = time.time() + 3
        for name, batch in (("ab", first), ("bc", second)):
            workers.start(
                f"{name}{round_number}", "python", "-c", BATCH_AT_SCRIPT, str(start_at), str(batch.pk)
            )
        for name in ("ab", "bc"):
            assert workers.processes[f"{name}{round_number}"].wait(timeout=120) == 0
        batches_process()  # whichever batch raced the other is redone here, as the sweep would

        survivors = Customer.objects.filter(merged_into=None, identities__value__in=people).distinct()
        assert survivors.count() == 1, f"round {round_number}"
        survivor = survivors.get()
        assert set(survivor.identities.values_list("value", flat=True)) == set(people)
        assert survivor.events.count() == 5
        assert survivor.event_stats.get(name="Product Viewed").count == 5


def test_a_request_replayed_while_its_first_copy_is_processed_is_stored_once(workers, source):
    # A client that timed out sends the request again: two copies in the inbox, two workers at once.
    events = [message(None, [f"replay-{index % 7}"], f"replay-{index}") for index in range(60)]
    copies = [inbox_store(source=source, events=events) for _copy in range(2)]
    start_at = time.time() + 3
    for number, batch in enumerate(copies):
        workers.start(f"copy{number}", "python", "-c", BATCH_AT_SCRIPT, str(start_at), str(batch.pk))
    for number in range(2):
        assert workers.processes[f"copy{number}"].wait(timeout=120) == 0
    batches_process()  # a copy that raced the other is redone here, as the sweep would

    assert not IngestBatch.objects.exists()
    assert Event.objects.filter(message_id__startswith="replay-").count() == 60
    assert Customer.objects.filter(merged_into=None, identities__value__startswith="replay-").count() == 7
    assert sum(CustomerEventStats.objects.values_list("count", flat=True)) == 60


def message(user_id: str | None, anonymous_ids: list[str], message_id: str) -> dict:
    return {
        "kind": "track",
        "name": "Product Viewed",
        "messageId": message_id,
        "userId": None,
        "anonymousId": None,
        "timestamp": "2026-11-20T10:00:00+08:00",
        "properties": {},
        "context": {"externalIds": [{"type": "anonymous_id", "id": value} for value in anonymous_ids]},
        "traits": {},
    }
