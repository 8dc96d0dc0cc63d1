"""Pushing to open pages over Channels: one group per signed-in user."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer


def user_group(user_id: int) -> str:
    return f"user-{user_id}"


def notify_user(*, user_id: int, kind: str, text: str, data: dict | None = None) -> None:
    """Sends a notification to every open page of this user (any process may call it)."""
    layer = get_channel_layer()
    async_to_sync(layer.group_send)(
        user_group(user_id),
        {"type": "notification", "kind": kind, "text": text, "data": data or {}},
    )
