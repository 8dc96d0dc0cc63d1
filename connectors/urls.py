from django.urls import path

from connectors import inbound_views, views

urlpatterns = [
    path("messages/<int:message_id>/", views.message_detail, name="message"),
    path("messages/<int:message_id>/resolve/", views.message_resolve, name="message_resolve"),
    path("channels/new/<str:kind>/", views.channel_new, name="channel_new"),
    path("channels/sandbox/", views.sandbox_page, name="channel_sandbox"),
    path("channels/<int:account_id>/", views.channel_detail, name="channel"),
    path("channels/<int:account_id>/pause/", views.channel_pause, name="channel_pause"),
    path("channels/<int:account_id>/test/", views.channel_test, name="channel_test"),
    path("hooks/<int:account_id>/", inbound_views.inbound, name="connector_inbound"),
    path("l/<str:code>", inbound_views.link, name="connector_link"),
    path("u/<str:token>/", inbound_views.unsubscribe, name="connector_unsubscribe"),
]
