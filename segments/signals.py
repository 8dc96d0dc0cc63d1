import logging

from django.db import transaction

from segments.refresh import refresh_request

log = logging.getLogger(__name__)


def refresh_later(customer_ids: list[int]) -> None:
    """These customers' segments, tags, stage and score are evaluated again by a worker: the request
    is stored with the caller's transaction, and a worker is woken once it commits."""
    refresh_request(customer_ids)
    transaction.on_commit(_wake_refresh, robust=True)


def _wake_refresh() -> None:
    from segments.tasks import refresh_requested

    try:
        refresh_requested.delay()
    # The broker being down must not undo what was committed: the stored requests wait for the next
    # task, or for the rules tick a minute later at the latest.
    except Exception:
        log.warning("could not queue a segment refresh", exc_info=True)


def queue_refresh(sender, customer_ids: list[int], **kwargs) -> None:
    """New events or tags (sent after they commit)."""
    refresh_later(customer_ids)
