from django.urls import path

from connectors import inbound_views, template_views, views

urlpatterns = [
    path("messages/templates/", template_views.templates_index, name="message_templates"),
    path("messages/templates/new/<str:channel>/", template_views.template_edit, name="message_template_new"),
    path("messages/templates/<int:template_id>/", template_views.template_edit, name="message_template"),
    path(
        "messages/templates/preview/<str:channel>/",
        template_views.template_preview,
        name="message_template_preview",
    ),
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
