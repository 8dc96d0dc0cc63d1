"""The messaging API: channel accounts (secrets never returned), messages (search, one with its
life, send one to a customer)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.access import user_can
from cdp.api.permissions import HasCapability
from cdp.selectors import customers_visible_to
from connectors.models import ChannelAccount, Message, MessageTemplate
from connectors.registry import kind_get
from connectors.selectors import (
    customer_lookup,
    message_life,
    message_search,
    messages_shown,
)
from connectors.services import message_enqueue
from connectors.vault import secrets_open


class AccountOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField()
    channel = serializers.CharField()
    status = serializers.CharField()
    paused_reason = serializers.CharField()
    rate_per_second = serializers.FloatField()
    settings = serializers.DictField(help_text="Settings that are not secret.")
    secrets_set = serializers.ListField(
        child=serializers.CharField(),
        help_text="Names of the secret settings that hold a value (never values).",
    )


def _account_data(account: ChannelAccount) -> dict:
    stored = secrets_open(account.secrets_encrypted)
    return {
        "id": account.pk,
        "name": account.name,
        "kind": account.kind,
        "channel": account.channel,
        "status": account.status,
        "paused_reason": account.paused_reason,
        "rate_per_second": account.rate_per_second,
        "settings": account.settings,
        "secrets_set": sorted(name for name in kind_get(account.kind).secret_fields() if stored.get(name)),
    }


class AccountListView(APIView):
    permission_classes = [HasCapability]
    required_capability = "manage_channels"

    @extend_schema(responses=AccountOutput(many=True))
    def get(self, request):
        return Response([_account_data(account) for account in ChannelAccount.objects.order_by("name")])


class MessageOutput(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = [
            "id", "idempotency_key", "account", "channel", "customer", "recipient", "template", "content",
            "origin", "journey_id", "enrollment_id", "node_id", "status", "reason", "attempts",
            "provider_message_id", "created_at", "sent_at", "delivered_at", "failed_at", "opened_at",
            "clicked_at", "replied_at",
        ]  # fmt: skip


class LifeOutput(serializers.Serializer):
    at = serializers.DateTimeField()
    step = serializers.CharField()
    status = serializers.CharField()
    detail = serializers.CharField()
    raw = serializers.CharField()


class MessageDetailOutput(MessageOutput):
    provider_answer = serializers.CharField()
    life = LifeOutput(many=True)

    class Meta(MessageOutput.Meta):
        fields = [*MessageOutput.Meta.fields, "provider_answer", "life"]


class MessageSendInput(serializers.Serializer):
    account = serializers.IntegerField()
    customer = serializers.CharField(help_text="A customer id, or an exact phone, email or user id.")
    idempotency_key = serializers.CharField(max_length=200)
    template = serializers.SlugField(required=False, help_text="A template key; or give `body`.")
    body = serializers.DictField(required=False, help_text="Fields of the channel kind, as in a template.")
    event_properties = serializers.DictField(required=False)


class MaskedMessageOutput(MessageOutput):
    def to_representation(self, message):
        user = self.context["request"].user
        messages_shown(
            [message], show_pii=user_can(user, "view_pii"), manages_channels=user_can(user, "manage_channels")
        )
        return super().to_representation(message)


class MessageListView(ListAPIView):
    permission_classes = [HasCapability]
    required_capability = {"GET": "view_messages", "POST": "send_messages"}
    serializer_class = MaskedMessageOutput

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str),
            OpenApiParameter("channel", str),
            OpenApiParameter("account", int),
            OpenApiParameter("customer", int),
            OpenApiParameter("journey", int),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params

        def number(name):
            value = params.get(name, "")
            return int(value) if value.isdigit() else None

        return message_search(
            status=params.get("status", ""),
            channel=params.get("channel", ""),
            account_id=number("account"),
            customer_id=number("customer"),
            journey_id=number("journey"),
            visible=customers_visible_to(self.request.user, via="customer"),
        )

    @extend_schema(request=MessageSendInput, responses={201: MessageOutput, 200: MessageOutput})
    def post(self, request):
        data = MessageSendInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        account = ChannelAccount.objects.filter(pk=values["account"]).first()
        if account is None:
            raise ValidationError({"account": ["No channel account has this id."]})
        customer = customer_lookup(values["customer"], user=request.user)
        if customer is None:
            raise ValidationError({"customer": ["No customer matches."]})
        template = None
        if values.get("template"):
            template = MessageTemplate.objects.filter(key=values["template"]).first()
            if template is None:
                raise ValidationError({"template": ["No template has this key."]})
        elif not values.get("body"):
            raise ValidationError({"body": ["Give a template or a body."]})
        try:
            message, created = message_enqueue(
                account=account,
                customer=customer,
                idempotency_key=values["idempotency_key"],
                template=template,
                body=values.get("body"),
                event_properties=values.get("event_properties"),
                origin="api",
                actor=request.user,
            )
        except DjangoValidationError as error:
            raise ValidationError(error.message_dict) from None
        return Response(
            MaskedMessageOutput(message, context={"request": request}).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class MessageDetailView(APIView):
    permission_classes = [HasCapability]
    required_capability = "view_messages"

    @extend_schema(responses=MessageDetailOutput)
    def get(self, request, message_id: int):
        visible = customers_visible_to(request.user, via="customer")
        message = Message.objects.filter(visible, pk=message_id).first()
        if message is None:
            raise NotFound
        life = message_life(message=message)
        messages_shown(
            [message],
            show_pii=user_can(request.user, "view_pii"),
            manages_channels=user_can(request.user, "manage_channels"),
            life=life,
        )
        data = MessageOutput(message).data
        data["provider_answer"] = message.provider_answer
        data["life"] = LifeOutput(life, many=True).data
        return Response(data)


class AccountOptionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    channel = serializers.CharField()
    status = serializers.CharField()


class AccountOptionsView(APIView):
    """The accounts a journey's send step may name (no settings): for the people who draw journeys."""

    permission_classes = [HasCapability]
    required_capability = "view_journeys"

    @extend_schema(responses=AccountOptionOutput(many=True))
    def get(self, request):
        accounts = ChannelAccount.objects.order_by("name")
        return Response(AccountOptionOutput(accounts, many=True).data)


class TemplateOutput(serializers.ModelSerializer):
    class Meta:
        model = MessageTemplate
        fields = ["id", "key", "name", "channel", "body", "updated_at"]


class TemplateListView(ListAPIView):
    permission_classes = [HasCapability]
    required_capability = "view_messages"
    serializer_class = TemplateOutput

    @extend_schema(parameters=[OpenApiParameter("channel", str)])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        templates = MessageTemplate.objects.order_by("name", "id")
        channel = self.request.query_params.get("channel", "")
        return templates.filter(channel=channel) if channel else templates
