"""The sweep for lost matching tasks: an event committed by ingestion whose matching task never ran
(its worker was killed; the broker would redeliver it only after its visibility timeout) still starts
its journey and wakes the wait for it, from the beat's tick; an event matching saw is never matched
again. (The tests' broker is in memory and nobody consumes it: every task queued here is lost.)"""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from journeys.matching import events_match, lost_events_sweep
from journeys.models import Enrollment
from segments.models import CustomerTag
from tests.journeys.conftest import edge, node, published, track

pytestmark = pytest.mark.django_db(transaction=True)


def test_events_whose_matching_task_was_lost_start_and_wake_journeys_from_the_sweep(tags, make_customer):
    published(
        {
            "nodes": [
                node("t1", "event_trigger", event="signed_up"),
                node(
                    "w1", "wait_for_event", event="order_completed", timeout_seconds=86400, ends=["timed_out"]
                ),
                node("g1", "add_tag", tag="bought", ends=["default"]),
            ],
            "edges": [edge("t1", "w1"), edge("w1", "g1", "happened")],
        }
    )
    lost, handled = make_customer(), make_customer(name="李雷", phone="+8613900139000")
    start = timezone.now()
    assert lost_events_sweep() == 0  # the first sweep starts from the newest event
    track(lost, "signed_up")
    track(handled, "signed_up")
    events_match(customer_ids=[handled.pk])  # this one's task ran; the other's was lost
    assert lost_events_sweep() == 0  # too early: the task may still be on its way

    with time_machine.travel(start + dt.timedelta(seconds=31), tick=False):
        assert lost_events_sweep() == 1
        assert lost_events_sweep() == 0
    assert set(Enrollment.objects.values_list("customer_id", "node_id", "phase")) == {
        (lost.pk, "w1", "resume"),
        (handled.pk, "w1", "resume"),
    }

    with time_machine.travel(start + dt.timedelta(seconds=40), tick=False):
        track(lost, "order_completed")  # its task is lost too
    with time_machine.travel(start + dt.timedelta(seconds=71), tick=False):
        assert lost_events_sweep() == 1
    done = Enrollment.objects.get(customer=lost)
    assert (done.status, done.reason) == ("completed", "left g1 by default")
    assert CustomerTag.objects.filter(customer=lost, tag__key="bought").exists()
    assert Enrollment.objects.get(customer=handled).status == "active"
    assert Enrollment.objects.count() == 2


def test_requests_to_match_wait_as_rows_and_one_task_takes_them_all(tags, make_customer):
    from cdp.models import Customer
    from cdp.signals import customers_changed
    from journeys.matching import match_requests_take
    from journeys.models import MatchRequest
    from journeys.tasks import events_arrived

    published(
        {
            "nodes": [
                node("t1", "event_trigger", event="signed_up"),
                node("g1", "add_tag", tag="lead", ends=["default"]),
            ],
            "edges": [edge("t1", "g1")],
        }
    )
    first, second = make_customer(), make_customer(name="李雷", phone="+8613900139000")
    # Three ingest groups commit one after another; their tasks are not run yet (nobody consumes the
    # tests' broker), as when the matching workers are busy.
    for customer in (first, second, first):
        track(customer, "signed_up")
        customers_changed.send(sender=Customer, customer_ids=[customer.pk])
    assert sorted(MatchRequest.objects.values_list("customer_id", flat=True)) == [first.pk, second.pk]

    assert events_arrived() == (2, 0)  # the first task to run takes every request
    # Left: the two customers again, for the tag_added events the journey itself just wrote (they
    # could start other journeys); they start nothing here, and then nothing is left.
    assert match_requests_take() == (0, 0)
    assert not MatchRequest.objects.exists()
    assert set(CustomerTag.objects.filter(tag__key="lead").values_list("customer_id", flat=True)) == {
        first.pk,
        second.pk,
    }
