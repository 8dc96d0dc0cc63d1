from celery import shared_task

from segments.services import membership_events_pending, membership_events_write


@shared_task
def membership_events(change_id: int) -> int:
    """Writes a segment refresh's segment_entered / segment_exited events (queued at its commit)."""
    return membership_events_write(change_id=change_id)


@shared_task
def membership_events_sweep() -> int:
    """Finishes changes whose task was lost (a broker restart, a killed worker)."""
    return membership_events_pending()
