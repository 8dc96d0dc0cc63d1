from django.http import JsonResponse
from django.utils.translation import gettext as _
from django.views.defaults import bad_request as django_bad_request
from django.views.defaults import page_not_found
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.access import CAPABILITIES, SIGNED_IN, user_can
from cdp.api.permissions import HasCapability
from cdp.selectors import user_role


class MeOutput(serializers.Serializer):
    username = serializers.CharField()
    name = serializers.CharField()
    email = serializers.EmailField()
    role = serializers.CharField(allow_null=True)
    capabilities = serializers.ListField(child=serializers.CharField())


class MeView(APIView):
    """The signed-in user and what their role allows; the canvas uses it to hide what they cannot do."""

    required_capability = SIGNED_IN

    @extend_schema(responses=MeOutput)
    def get(self, request):
        user = request.user
        data = {
            "username": user.username,
            "name": user.get_full_name(),
            "email": user.email,
            "role": user_role(user),
            "capabilities": [codename for codename in CAPABILITIES if user_can(user, codename)],
        }
        return Response(MeOutput(data).data)


class SchemaView(SpectacularAPIView):
    """The OpenAPI schema, for signed-in users and API clients with a token."""

    required_capability = SIGNED_IN
    permission_classes = [HasCapability]


def not_found(request, exception):
    """A URL under /api/ that names nothing (``/api/journeys/-1/``) is answered in JSON like any other
    API refusal; the pages' 404 stays a page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": str(NotFound.default_detail)}, status=404)
    return page_not_found(request, exception)


def bad_request(request, exception):
    """A request Django refuses before any view (a form with more than DATA_UPLOAD_MAX_NUMBER_FIELDS
    fields, a body over its size limit), in JSON under /api/."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": str(exception) or _("The request was refused.")}, status=400)
    return django_bad_request(request, exception)
