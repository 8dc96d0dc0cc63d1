import logging

log = logging.getLogger(__name__)

# The first matching task to start takes every waiting request, so one queued copy is enough: a burst
# of commits costs one task, not one each. A copy not started within this long is dropped, and the
# next commit or the tick's sweep queues another.
WAKE_EXPIRES = 60


def journeys_reading_answer(sender, *, node: str, **kwargs) -> list[str]:
    """A tag, segment or stage is about to be deleted: the journeys that read it."""
    from journeys.selectors import journeys_reading

    return journeys_reading(node)


def queue_events_match(sender, customer_ids: list[int], **kwargs) -> None:
    """New events for these customers (sent after they commit): a worker on the matching queue
    matches them with journeys, so ingestion never waits for journeys. The request is a row; the first
    task that runs takes every pending one."""
    from cdp.wakeups import wake_once
    from journeys.matching import match_request
    from journeys.tasks import events_arrived

    match_request(customer_ids)
    try:
        wake_once(events_arrived, key="journeys.events_arrived", expires=WAKE_EXPIRES)
    # The broker being down must not undo what was committed: waits still end at their timeouts.
    except Exception:
        log.warning("could not queue journey matching for %s customers", len(customer_ids), exc_info=True)
