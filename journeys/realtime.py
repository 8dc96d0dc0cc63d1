"""Open journey pages learn that customers moved, and fetch the new numbers themselves.

The engine publishes after each batch commits, at most once a second per journey and process: a
journey running thousands of steps a second costs one message a second, not one per step. A page
that was told fetches again a moment later too, so the last move before a quiet second shows."""

from __future__ import annotations

import logging
import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

PUBLISH_INTERVAL = 1.0
_last_published: dict[int, float] = {}


def journey_group(journey_id: int) -> str:
    return f"journey-{journey_id}"


def journeys_moved(journey_ids) -> None:
    """After a commit that moved customers in these journeys."""
    now = time.monotonic()
    due = [pk for pk in set(journey_ids) if now - _last_published.get(pk, 0.0) >= PUBLISH_INTERVAL]
    if not due:
        return
    layer = get_channel_layer()
    try:
        for journey_id in due:
            _last_published[journey_id] = now
            async_to_sync(layer.group_send)(journey_group(journey_id), {"type": "journey.moved"})
    except Exception:  # a realtime hiccup must never fail the engine; pages catch up on reload
        log.warning("could not publish journey moves", exc_info=True)
