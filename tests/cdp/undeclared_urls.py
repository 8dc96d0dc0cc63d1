"""A URL configuration with views that skip the access check (for test_access)."""

from django.http import HttpResponse
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.access import SIGNED_IN
from cdp.urls import urlpatterns as product_urlpatterns


def forgot_to_declare(request):
    return HttpResponse("secret")


class ApiWithoutCapabilityCheck(APIView):
    required_capability = SIGNED_IN
    permission_classes = [AllowAny]  # drops HasCapability: the middleware must refuse it

    def get(self, request):
        return Response({"secret": True})


urlpatterns = [
    path("undeclared/", forgot_to_declare),
    path("api/unchecked/", ApiWithoutCapabilityCheck.as_view()),
    *product_urlpatterns,
]
