from channels.db import database_sync_to_async

from cdp.access import user_can
from cdp.consumers import UNAUTHENTICATED_CLOSE_CODE, UserSocket
from journeys.realtime import journey_group


class JourneyLiveConsumer(UserSocket):
    """A journey's page: told when its customers move, it fetches the new counts."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not await database_sync_to_async(user_can)(user, "view_journeys"):
            await self.close(code=UNAUTHENTICATED_CLOSE_CODE)
            return
        self.journey_group = journey_group(int(self.scope["url_route"]["kwargs"]["journey_id"]))
        await self.join_user_group(user)
        await self.channel_layer.group_add(self.journey_group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await super().disconnect(code)
        if hasattr(self, "journey_group"):
            await self.channel_layer.group_discard(self.journey_group, self.channel_name)

    async def journey_moved(self, event):
        await self.send_json({"moved": True})
