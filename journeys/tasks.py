from celery import shared_task

from journeys.audiences import scheduled_audiences_enroll
from journeys.engine import tick
from journeys.matching import events_match, lost_events_sweep, match_requests_take, segment_events_sweep


@shared_task
def engine_tick() -> int:
    """Beat, every few seconds: scheduled audiences enter (a chunk at a time), events whose matching
    task was lost start and wake their journeys, segment entries and exits start theirs, and due
    enrollments run until they wait again."""
    entered = scheduled_audiences_enroll(budget_seconds=10)
    return entered + lost_events_sweep() + segment_events_sweep() + tick()


@shared_task
def events_arrived(customer_ids: list[int] | None = None) -> tuple[int, int]:
    """Ingest groups committed: the events of every customer waiting to be matched start triggers
    and wake waits (``customer_ids``: tasks queued before requests were rows)."""
    if customer_ids:
        events_match(customer_ids=customer_ids)
    return match_requests_take()
