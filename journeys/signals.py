import logging

log = logging.getLogger(__name__)


def journeys_reading_answer(sender, *, node: str, **kwargs) -> list[str]:
    """A tag, segment or stage is about to be deleted: the journeys that read it."""
    from journeys.selectors import journeys_reading

    return journeys_reading(node)


def queue_events_match(sender, customer_ids: list[int], **kwargs) -> None:
    """New events for these customers (sent after they commit): a worker on the matching queue
    matches them with journeys, so ingestion never waits for journeys. The request is a row; the first
    task that runs takes every pending one."""
    from journeys.matching import match_request
    from journeys.tasks import events_arrived

    match_request(customer_ids)
    try:
        events_arrived.delay()
    # The broker being down must not undo what was committed: waits still end at their timeouts.
    except Exception:
        log.warning("could not queue journey matching for %s customers", len(customer_ids), exc_info=True)
