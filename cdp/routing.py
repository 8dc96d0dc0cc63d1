from django.urls import path

from cdp.consumers import CustomersLiveConsumer, NotificationConsumer
from journeys.consumers import JourneyLiveConsumer

websocket_urlpatterns = [
    path("ws/notifications/", NotificationConsumer.as_asgi()),
    path("ws/customers/live/", CustomersLiveConsumer.as_asgi()),
    path("ws/journeys/<int:journey_id>/live/", JourneyLiveConsumer.as_asgi()),
]
