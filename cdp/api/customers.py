"""The open API for back-office systems: search customers, read a profile, upsert one, list events."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp import customers as selectors
from cdp.access import user_can
from cdp.api.permissions import HasCapability
from cdp.identity import IDENTITY_TYPES
from cdp.models import Customer, Event
from cdp.scoped_upsert import OutOfScope, customer_upsert_in_scope
from cdp.selectors import customer_visible, customers_visible_to
from cdp.services import audit_record


class IdentityOutput(serializers.Serializer):
    type = serializers.CharField()
    value = serializers.CharField()
    source = serializers.CharField()
    first_seen_at = serializers.DateTimeField()


class CustomerSummaryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    phone = serializers.CharField(allow_blank=True)
    traits = serializers.DictField()
    first_seen_at = serializers.DateTimeField(allow_null=True)
    last_seen_at = serializers.DateTimeField(allow_null=True)


class CustomerPageOutput(serializers.Serializer):
    """One page of customers, as DRF's page-number pagination answers."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = CustomerSummaryOutput(many=True)


class StatOutput(serializers.Serializer):
    name = serializers.CharField()
    count = serializers.IntegerField()
    first_at = serializers.DateTimeField()
    last_at = serializers.DateTimeField()
    amount_sum = serializers.DecimalField(max_digits=16, decimal_places=2)


class ConsentOutput(serializers.Serializer):
    channel = serializers.CharField()
    status = serializers.CharField()
    changed_at = serializers.DateTimeField()
    origin = serializers.CharField()


class CustomerOutput(CustomerSummaryOutput):
    owner = serializers.CharField(allow_null=True)
    identities = IdentityOutput(many=True)
    consents = ConsentOutput(many=True)
    stats = StatOutput(many=True)


class EventOutput(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = [
            "id",
            "kind",
            "name",
            "channel",
            "timestamp",
            "received_at",
            "message_id",
            "properties",
            "context",
        ]

    def to_representation(self, event):
        data = super().to_representation(event)
        show_pii = user_can(self.context["request"].user, "view_pii")
        data["properties"] = selectors.redact(data["properties"], show_pii=show_pii)
        data["context"] = selectors.redact(data["context"], show_pii=show_pii)
        return data


class CustomerUpsertInput(serializers.Serializer):
    identities = serializers.DictField(
        child=serializers.CharField(max_length=255),
        help_text="Identifiers by type: " + ", ".join(IDENTITY_TYPES) + ".",
    )
    traits = serializers.DictField(required=False, default=dict)
    message_id = serializers.CharField(
        required=False, max_length=200, help_text="Makes a retried call harmless."
    )

    def validate_identities(self, identities: dict) -> dict:
        if not identities:
            raise serializers.ValidationError("Give at least one identifier.")
        unknown = sorted(set(identities) - set(IDENTITY_TYPES))
        if unknown:
            raise serializers.ValidationError(
                f"Unknown identity types: {', '.join(unknown)}; use {', '.join(IDENTITY_TYPES)}."
            )
        return identities


def _summary(customer: Customer, show_pii: bool, phone: str | None = None) -> dict:
    if phone is None:
        phone = selectors.customer_primary_phone(customer=customer, show_pii=show_pii)
    return {
        "id": customer.pk,
        "name": customer.name,
        "phone": phone,
        "traits": selectors.redact(customer.traits, show_pii=show_pii),
        "first_seen_at": customer.first_seen_at,
        "last_seen_at": customer.last_seen_at,
    }


def _profile(customer: Customer, show_pii: bool) -> dict:
    return {
        **_summary(customer, show_pii),
        "owner": customer.owner.get_username() if customer.owner else None,
        "identities": [
            vars(row) for row in selectors.customer_identities(customer=customer, show_pii=show_pii)
        ],
        "consents": selectors.customer_consents(customer=customer),
        "stats": selectors.customer_stats(customer=customer),
    }


def _active_customer(request, customer_id: int) -> Customer:
    """The customer (or its survivor) if the caller's roles let them see it; else 404, as if absent."""
    customer = selectors.customer_resolve(customer_id=customer_id)
    if customer is None or not customer_visible(request.user, customer):
        raise NotFound(f"No customer {customer_id}.")
    return customer


class CustomerListView(APIView):
    """Search customers (GET) or create/update one from a back-office system (POST)."""

    required_capability = {"GET": "view_customers", "POST": "edit_customers"}
    permission_classes = [HasCapability]

    @extend_schema(
        operation_id="customers_list",  # a page object, not a list: named, or it collides with the detail's
        parameters=[
            OpenApiParameter(
                "q", str, description="phone, email, WeChat or user id (exact), or a name prefix"
            ),
            OpenApiParameter("channel", str, description="a source kind: web, app, mini_program, ..."),
            OpenApiParameter("role", str, description="the role trait: buyer, supplier"),
            OpenApiParameter("page", int),
        ],
        responses=CustomerPageOutput,
    )
    def get(self, request):
        customers = selectors.customer_search(
            query=request.query_params.get("q", ""),
            channel=request.query_params.get("channel", ""),
            role=request.query_params.get("role", ""),
        ).filter(customers_visible_to(request.user))
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(customers, request, view=self)
        show_pii = user_can(request.user, "view_pii")
        phones = selectors.primary_phones(customer_ids=[customer.pk for customer in page], show_pii=show_pii)
        summaries = [_summary(customer, show_pii, phone=phones.get(customer.pk, "")) for customer in page]
        return paginator.get_paginated_response(CustomerSummaryOutput(summaries, many=True).data)

    @extend_schema(request=CustomerUpsertInput, responses={200: CustomerOutput, 201: CustomerOutput})
    def post(self, request):
        payload = CustomerUpsertInput(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            customer, created = customer_upsert_in_scope(
                user=request.user,
                identities=payload.validated_data["identities"],
                traits=payload.validated_data["traits"],
                message_id=payload.validated_data.get("message_id"),
            )
        except ValueError as error:
            raise ValidationError({"identities": [str(error)]}) from error
        except OutOfScope as error:
            raise PermissionDenied(str(error)) from error
        audit_record(
            actor=request.user,
            action="customer.api_upsert",
            target=customer,
            details={"created": created, "identity_types": sorted(payload.validated_data["identities"])},
        )
        data = CustomerOutput(_profile(customer, user_can(request.user, "view_pii"))).data
        return Response(data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class CustomerDetailView(APIView):
    """The unified profile: traits, identities, consents, activity; a merged id answers with the survivor."""

    required_capability = "view_customers"
    permission_classes = [HasCapability]

    @extend_schema(responses=CustomerOutput)
    def get(self, request, customer_id: int):
        customer = _active_customer(request, customer_id)
        return Response(CustomerOutput(_profile(customer, user_can(request.user, "view_pii"))).data)


class NewestFirst(CursorPagination):
    ordering = ("-timestamp", "-id")
    page_size = 100


class CustomerEventsView(ListAPIView):
    """A customer's events, newest first, by cursor (stable while new events arrive)."""

    required_capability = "view_customers"
    permission_classes = [HasCapability]
    serializer_class = EventOutput
    pagination_class = NewestFirst

    def get_queryset(self):
        return Event.objects.filter(customer=_active_customer(self.request, self.kwargs["customer_id"]))
