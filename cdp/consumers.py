from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.utils import translation
from django.utils.translation.trans_real import get_supported_language_variant, parse_accept_lang_header

from cdp.access import user_can
from cdp.models import CustomerScope
from cdp.realtime import CUSTOMERS_LIVE_GROUP, user_group
from cdp.selectors import customers_visible_among, user_customer_scope

UNAUTHENTICATED_CLOSE_CODE = 4401
SESSION_ENDED_CLOSE_CODE = 4403


def scope_language(scope) -> str:
    """The language the page that opened this socket speaks: the one chosen on the page (the
    language cookie), else the browser's, else the default, as for pages."""
    wanted = [scope.get("cookies", {}).get(settings.LANGUAGE_COOKIE_NAME, "")]
    headers = dict(scope.get("headers", []))
    wanted += [
        code for code, _quality in parse_accept_lang_header(headers.get(b"accept-language", b"").decode())
    ]
    for code in wanted:
        if not code or code == "*":
            continue
        try:
            return get_supported_language_variant(code)
        except LookupError:
            continue
    return settings.LANGUAGE_CODE


class UserSocket(AsyncJsonWebsocketConsumer):
    """A socket that belongs to a signed-in user: closed when that user is deactivated."""

    async def join_user_group(self, user) -> None:
        self.user_group = user_group(user.pk)
        await self.channel_layer.group_add(self.user_group, self.channel_name)

    async def disconnect(self, code):
        if hasattr(self, "user_group"):
            await self.channel_layer.group_discard(self.user_group, self.channel_name)

    async def session_ended(self, event):
        await self.close(code=SESSION_ENDED_CLOSE_CODE)

    async def rights_changed(self, event):
        """The user's role, team or scope changed: a live socket closes (its page reconnects under the
        new rights); ``NotificationConsumer`` stays open."""
        await self.close(code=SESSION_ENDED_CLOSE_CODE)

    async def notification(self, event):
        """Notifications go to every socket in the user's group; only ``NotificationConsumer`` shows
        them (a page's live socket would otherwise fail on one)."""


class NotificationConsumer(UserSocket):
    """A signed-in user's stream of notifications (role changes now; tasks and alerts later)."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close(code=UNAUTHENTICATED_CLOSE_CODE)
            return
        await self.join_user_group(user)
        await self.accept()

    async def rights_changed(self, event):
        """Notifications are the user's own, whatever their rights: the stream stays open, and tells
        them of the change."""

    async def notification(self, event):
        with translation.override(scope_language(self.scope)):
            params = {
                key: translation.gettext(value) if key in event["translated_params"] else value
                for key, value in event["params"].items()
            }
            text = (
                translation.gettext(event["message"]) % params
                if params
                else translation.gettext(event["message"])
            )
        await self.send_json({"kind": event["kind"], "text": text, "data": event["data"]})


class LiveSocket(UserSocket):
    """A page's live updates: open to users with ``capability``, joined to the group ``live_group``
    names (from the socket's URL)."""

    capability: str

    def live_group(self) -> str:
        raise NotImplementedError

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not await database_sync_to_async(user_can)(user, self.capability):
            await self.close(code=UNAUTHENTICATED_CLOSE_CODE)
            return
        await self.join_user_group(user)
        await self.channel_layer.group_add(self.live_group(), self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await super().disconnect(code)
        await self.channel_layer.group_discard(self.live_group(), self.channel_name)

    async def notification(self, event):
        """The user's group also carries notifications, which their notifications socket shows; a
        page's live socket ignores them (without a handler, one would close the socket)."""


class CustomersLiveConsumer(LiveSocket):
    """Open profile pages learn which customers just got new events, and fetch their new rows: only
    customers the user's roles let them see. The scope is read once, when the socket opens; a change
    of roles, scope or team closes the user's sockets, and the pages reconnect under the new one."""

    capability = "view_customers"

    def live_group(self) -> str:
        return CUSTOMERS_LIVE_GROUP

    async def connect(self):
        user = self.scope.get("user")
        self.sees_all = bool(user) and await database_sync_to_async(_sees_all_customers)(user)
        await super().connect()

    async def customers_changed(self, event):
        ids = event["ids"]
        if not self.sees_all:
            ids = await database_sync_to_async(customers_visible_among)(self.scope["user"], ids)
        if ids:
            await self.send_json({"ids": ids})


def _sees_all_customers(user) -> bool:
    return user.is_authenticated and user_customer_scope(user) == CustomerScope.ALL
