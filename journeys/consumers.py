from cdp.consumers import LiveSocket
from journeys.realtime import journey_group


class JourneyLiveConsumer(LiveSocket):
    """A journey's page: told when its customers move, it fetches the new counts."""

    capability = "view_journeys"

    def live_group(self) -> str:
        return journey_group(int(self.scope["url_route"]["kwargs"]["journey_id"]))

    async def journey_moved(self, event):
        await self.send_json({"moved": True})
