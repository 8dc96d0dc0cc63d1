from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework import serializers
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
