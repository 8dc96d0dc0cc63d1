import logging

log = logging.getLogger(__name__)


def journeys_reading_answer(sender, *, node: str, **kwargs) -> list[str]:
    """A tag, segment or stage is about to be deleted: the journeys that read it."""
    from journeys.selectors import journeys_reading

    return journeys_reading(node)


def queue_events_match(sender, customer_ids: list[int], **kwargs) -> None:
    """New events for these customers: a worker on the matching queue matches them with journeys, so
    ingestion never waits for journeys."""
    from journeys.tasks import events_arrived

    try:
        events_arrived.delay(customer_ids)
    # The broker being down must not undo what was committed: waits still end at their timeouts.
    except Exception:
        log.warning("could not queue journey matching for %s customers", len(customer_ids), exc_info=True)
