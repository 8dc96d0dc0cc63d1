"""Pushing to open pages over Channels: one group per signed-in user."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)


def user_group(user_id: int) -> str:
    return f"user-{user_id}"


def notify_user(
    *,
    user_id: int,
    kind: str,
    message: str,
    params: dict | None = None,
    translated_params: tuple[str, ...] = (),
    data: dict | None = None,
) -> None:
    """Sends a notification to every open page of this user (any process may call it). ``message``
    is the untranslated text (mark it with ``gettext_noop``): each page translates it into its own
    language, not the language of whoever caused it; so are the ``translated_params``."""
    layer = get_channel_layer()
    async_to_sync(layer.group_send)(
        user_group(user_id),
        {
            "type": "notification",
            "kind": kind,
            "message": message,
            "params": params or {},
            "translated_params": list(translated_params),
            "data": data or {},
        },
    )


def sessions_end(*, user_id: int) -> None:
    """Closes every open socket of this user (deactivated: their pages must stop receiving data)."""
    async_to_sync(get_channel_layer().group_send)(user_group(user_id), {"type": "session.ended"})


def live_sockets_reopen(*, user_id: int) -> None:
    """Closes this user's live-data sockets, which keep the rights they opened with: their pages
    reconnect under the new ones. The notification stream carries only the user's own messages (the
    one telling them of the change among them) and stays open."""
    async_to_sync(get_channel_layer().group_send)(user_group(user_id), {"type": "rights.changed"})


CUSTOMERS_LIVE_GROUP = "customers-live"


def publish_customers_changed(customer_ids: list[int]) -> None:
    """Tells open profile pages which customers just got new events (one message per ingest batch,
    however many customers, so the hot path pays one publish)."""
    if not customer_ids:
        return
    try:
        async_to_sync(get_channel_layer().group_send)(
            CUSTOMERS_LIVE_GROUP, {"type": "customers.changed", "ids": sorted(set(customer_ids))[:5000]}
        )
    except Exception:  # a realtime hiccup must never fail ingestion; pages catch up on reload
        log.warning("could not publish customer changes", exc_info=True)
