from django.urls import path

from cdp.api.views import MeView, SchemaView

urlpatterns = [
    path("schema/", SchemaView.as_view(), name="schema"),
    path("me/", MeView.as_view(), name="api_me"),
]
