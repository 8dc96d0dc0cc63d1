"""The contact policy over the API: per channel, the caps per customer and the quiet hours."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.api.permissions import HasCapability
from connectors.protocol import Channel
from journeys.models import ChannelPolicy
from journeys.policy import POLICY_CHANNELS, channel_policies, channel_policy_save


class ChannelPolicyOutput(serializers.Serializer):
    channel = serializers.ChoiceField(choices=POLICY_CHANNELS)
    channel_label = serializers.SerializerMethodField()
    per_day = serializers.IntegerField(
        allow_null=True, help_text="At most this many messages a day (null: no cap)"
    )
    per_week = serializers.IntegerField(allow_null=True, help_text="At most this many a week (null: no cap)")
    quiet_start = serializers.TimeField(
        allow_null=True, format="%H:%M", help_text="Quiet hours from (customer's time)"
    )
    quiet_end = serializers.TimeField(allow_null=True, format="%H:%M", help_text="Quiet hours until")
    quiet_action = serializers.ChoiceField(
        choices=ChannelPolicy.QuietAction.choices, help_text="hold: send when they end; skip: do not send"
    )

    def get_channel_label(self, policy) -> str:
        return str(Channel.LABELS.get(policy.channel, policy.channel))


class ChannelPolicyInput(serializers.Serializer):
    per_day = serializers.IntegerField(required=False, allow_null=True, default=None)
    per_week = serializers.IntegerField(required=False, allow_null=True, default=None)
    quiet_start = serializers.TimeField(required=False, allow_null=True, default=None)
    quiet_end = serializers.TimeField(required=False, allow_null=True, default=None)
    quiet_action = serializers.ChoiceField(
        choices=ChannelPolicy.QuietAction.choices, required=False, default=ChannelPolicy.QuietAction.HOLD
    )


class ContactPolicyListView(APIView):
    """Every channel's contact policy for journey sends (consent is always checked besides)."""

    required_capability = "view_journeys"
    permission_classes = [HasCapability]

    @extend_schema(responses=ChannelPolicyOutput(many=True))
    def get(self, request):
        return Response(ChannelPolicyOutput(list(channel_policies().values()), many=True).data)


class ContactPolicyDetailView(APIView):
    required_capability = {"GET": "view_journeys", "PUT": "manage_journeys"}
    permission_classes = [HasCapability]

    @extend_schema(responses=ChannelPolicyOutput)
    def get(self, request, channel: str):
        policies = channel_policies()
        if channel not in policies:
            problem = _("Unknown channel kind “%(kind)s”.") % {"kind": channel}
            return Response({"channel": [problem]}, status=status.HTTP_404_NOT_FOUND)
        return Response(ChannelPolicyOutput(policies[channel]).data)

    @extend_schema(request=ChannelPolicyInput, responses={200: ChannelPolicyOutput})
    def put(self, request, channel: str):
        """Sets the channel's caps and quiet hours; 400 names each field and its problem."""
        data = ChannelPolicyInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            policy = channel_policy_save(channel=channel, actor=request.user, **data.validated_data)
        except DjangoValidationError as error:
            return Response(error.message_dict, status=status.HTTP_400_BAD_REQUEST)
        return Response(ChannelPolicyOutput(policy).data)
