from celery import shared_task

from journeys.engine import tick
from journeys.matching import events_match, segment_events_sweep


@shared_task
def engine_tick() -> int:
    """Beat, every few seconds: due enrollments run until they wait again; segment entries and exits
    start their journeys."""
    return segment_events_sweep() + tick()


@shared_task
def events_arrived(customer_ids: list[int]) -> tuple[int, int]:
    """An ingest group committed for these customers: their events start triggers and wake waits."""
    return events_match(customer_ids=customer_ids)
