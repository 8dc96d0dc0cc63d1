from celery import shared_task

from segments.refresh import customers_refresh, dependents_refresh, edges_cross, refresh_requests_take
from segments.scoring import scores_expire
from segments.services import membership_events_pending, membership_events_write


@shared_task
def membership_events(change_id: int) -> int:
    """Writes a segment refresh's segment_entered / segment_exited events (queued at its commit)."""
    return membership_events_write(change_id=change_id)


@shared_task
def membership_events_sweep() -> int:
    """Finishes changes whose task was lost (a broker restart, a killed worker)."""
    return membership_events_pending()


@shared_task
def refresh_requested() -> int:
    """Scores, then tags, segments and stages, re-evaluated for every customer waiting for it (those
    ingest groups, tag changes and merges touched). Queued at each request's commit; a task that
    finds the requests already taken by an earlier one ends at once."""
    return refresh_requests_take()


@shared_task
def refresh_dependents(node: str) -> int:
    """Everything built on a segment, tag or stage whose definition just changed."""
    return len(dependents_refresh(node))


@shared_task
def rules_tick() -> int:
    """Beat, every minute: scores whose points lapsed, and (once a day) customers at the edge of a
    time window, re-evaluated."""
    lapsed = scores_expire()
    if lapsed:
        customers_refresh(customer_ids=sorted(lapsed))
    # Requests whose task was lost (the broker was down when they were made, a worker was killed).
    return len(lapsed) + edges_cross() + refresh_requests_take()
