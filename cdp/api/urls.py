from django.urls import path

from cdp.api.views import MeView

urlpatterns = [
    path("me/", MeView.as_view(), name="api_me"),
]
