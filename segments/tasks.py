from celery import shared_task

from segments.services import membership_events_pending, membership_events_write, segments_refresh_customers


@shared_task
def membership_events(change_id: int) -> int:
    """Writes a segment refresh's segment_entered / segment_exited events (queued at its commit)."""
    return membership_events_write(change_id=change_id)


@shared_task
def membership_events_sweep() -> int:
    """Finishes changes whose task was lost (a broker restart, a killed worker)."""
    return membership_events_pending()


@shared_task
def refresh_customers(customer_ids: list[int]) -> int:
    """Segments re-evaluated for the customers an ingest group (or a tag change) touched."""
    return len(segments_refresh_customers(customer_ids=customer_ids))
