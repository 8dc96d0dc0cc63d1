import logging

log = logging.getLogger(__name__)


def queue_refresh(sender, customer_ids: list[int], **kwargs) -> None:
    """New events or tags: the segments of these customers are evaluated again by a worker."""
    from segments.tasks import refresh_customers

    try:
        refresh_customers.delay(customer_ids)
    # The broker being down must not undo what was committed: the memberships of these customers
    # stay as they were until their next change or the segment's next full refresh.
    except Exception:
        log.warning("could not queue a segment refresh for %s customers", len(customer_ids), exc_info=True)
