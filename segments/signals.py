import logging

from django.db import transaction

from segments.refresh import refresh_request

log = logging.getLogger(__name__)

# A waiting refresh task takes every stored request when it starts, so one queued copy is enough: a
# burst of commits then costs one task, not one each (thousands of them once made the segments queue
# hold the sandbox receipts behind it). A copy not started within this long is dropped, and the next
# commit or the rules tick queues another.
WAKE_EXPIRES = 60


def refresh_later(customer_ids: list[int]) -> None:
    """These customers' segments, tags, stage and score are evaluated again by a worker: the request
    is stored with the caller's transaction, and a worker is woken once it commits."""
    refresh_request(customer_ids)
    transaction.on_commit(_wake_refresh, robust=True)


def _wake_refresh() -> None:
    from cdp.wakeups import wake_once
    from segments.tasks import refresh_requested

    try:
        wake_once(refresh_requested, key="segments.refresh_requested", expires=WAKE_EXPIRES)
    # The broker being down must not undo what was committed: the stored requests wait for the next
    # task, or for the rules tick a minute later at the latest.
    except Exception:
        log.warning("could not queue a segment refresh", exc_info=True)


def queue_refresh(sender, customer_ids: list[int], **kwargs) -> None:
    """New events or tags (sent after they commit)."""
    refresh_later(customer_ids)
