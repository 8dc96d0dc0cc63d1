from django.urls import path

from cdp.consumers import CustomersLiveConsumer, NotificationConsumer

websocket_urlpatterns = [
    path("ws/notifications/", NotificationConsumer.as_asgi()),
    path("ws/customers/live/", CustomersLiveConsumer.as_asgi()),
]
