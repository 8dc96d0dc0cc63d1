"""Segments over the API: preview a rule while editing it, save segments, refresh their membership."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.access import user_can
from cdp.api.permissions import HasCapability
from cdp.customers import primary_phones
from cdp.models import Customer
from cdp.selectors import customers_visible_to
from segments.lists import builder_vocabulary
from segments.models import Segment
from segments.rules import RuleError
from segments.services import segment_delete, segment_preview, segment_refresh, segment_save


class RuleProblem(serializers.Serializer):
    path = serializers.CharField(help_text="Where in the rule, as a JSON path: $.and[1].count.value")
    message = serializers.CharField()


class RuleProblems(serializers.Serializer):
    errors = RuleProblem(many=True)


class RuleInput(serializers.Serializer):
    rule = serializers.JSONField(help_text="A rule tree; see docs/rules.md")


class SampleCustomer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    phone = serializers.CharField(allow_blank=True)
    last_seen_at = serializers.DateTimeField(allow_null=True)


class PreviewOutput(serializers.Serializer):
    count = serializers.IntegerField()
    sample = SampleCustomer(many=True)


class SegmentInput(RuleInput):
    key = serializers.CharField(max_length=100)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class SegmentOutput(serializers.ModelSerializer):
    class Meta:
        model = Segment
        fields = ["id", "key", "name", "description", "kind", "rule", "member_count", "refreshed_at"]


class MembershipChangeOutput(serializers.Serializer):
    entered = serializers.IntegerField()
    exited = serializers.IntegerField()
    member_count = serializers.IntegerField()


def _problems(error: RuleError) -> Response:
    return Response({"errors": error.problems}, status=status.HTTP_400_BAD_REQUEST)


class SegmentPreviewView(APIView):
    """How many customers a rule selects right now, with a sample: the live count of the rule editor."""

    # Those who build segments; counts of any rule would otherwise let readers probe the data.
    required_capability = "manage_segments"
    permission_classes = [HasCapability]

    @extend_schema(request=RuleInput, responses={200: PreviewOutput, 400: RuleProblems})
    def post(self, request):
        data = RuleInput(data=request.data)
        data.is_valid(raise_exception=True)
        show_pii = user_can(request.user, "view_pii")
        try:
            preview = segment_preview(rule_data=data.validated_data["rule"], personal_data=show_pii)
        except RuleError as error:
            return _problems(error)
        # The sample shows only customers the reader's roles let them see; the count is a number.
        seen = set(
            Customer.objects.filter(
                customers_visible_to(request.user), pk__in=[c.pk for c in preview.sample]
            ).values_list("pk", flat=True)
        )
        shown = [c for c in preview.sample if c.pk in seen]
        phones = primary_phones(customer_ids=[c.pk for c in shown], show_pii=show_pii)
        sample = [
            {"id": c.pk, "name": c.name, "phone": phones.get(c.pk, ""), "last_seen_at": c.last_seen_at}
            for c in shown
        ]
        return Response(PreviewOutput({"count": preview.count, "sample": sample}).data)


class SegmentListView(APIView):
    required_capability = {"GET": "view_segments", "POST": "manage_segments"}
    permission_classes = [HasCapability]

    @extend_schema(responses=SegmentOutput(many=True))
    def get(self, request):
        return Response(SegmentOutput(Segment.objects.order_by("name"), many=True).data)

    @extend_schema(request=SegmentInput, responses={201: SegmentOutput, 400: RuleProblems})
    def post(self, request):
        data = SegmentInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            segment = segment_save(
                key=values["key"],
                name=values["name"],
                description=values["description"],
                rule_data=values["rule"],
                actor=request.user,
            )
        except RuleError as error:
            return _problems(error)
        except DjangoValidationError as error:
            return Response(error.message_dict, status=status.HTTP_400_BAD_REQUEST)
        return Response(SegmentOutput(segment).data, status=status.HTTP_201_CREATED)


class SegmentDetailView(APIView):
    required_capability = {"GET": "view_segments", "DELETE": "manage_segments"}
    permission_classes = [HasCapability]

    @extend_schema(responses=SegmentOutput)
    def get(self, request, segment_id: int):
        return Response(SegmentOutput(get_object_or_404(Segment, pk=segment_id)).data)

    @extend_schema(responses={204: None, 409: RuleProblems})
    def delete(self, request, segment_id: int):
        """Refused (409) while other rules read the segment; the answer names them."""
        try:
            segment_delete(segment=get_object_or_404(Segment, pk=segment_id), actor=request.user)
        except DjangoValidationError as error:
            return Response(error.message_dict, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SegmentRefreshView(APIView):
    """Brings the membership up to date now: who entered and who left since the last refresh."""

    required_capability = "manage_segments"
    permission_classes = [HasCapability]

    @extend_schema(request=None, responses=MembershipChangeOutput)
    def post(self, request, segment_id: int):
        segment = get_object_or_404(Segment, pk=segment_id)
        change = segment_refresh(segment=segment)
        segment.refresh_from_db()
        return Response(
            {"entered": change.entered, "exited": change.exited, "member_count": segment.member_count}
        )


class KeyedName(serializers.Serializer):
    key = serializers.CharField(help_text='What rules call it: {"tag": key}')
    name = serializers.CharField()


class ValuesSeen(serializers.Serializer):
    key = serializers.CharField()
    values = serializers.ListField(
        child=serializers.JSONField(), help_text="The most frequent short values in the recent sample"
    )


class EventVocabulary(serializers.Serializer):
    name = serializers.CharField()
    properties = ValuesSeen(many=True, help_text="Properties the event's latest occurrences carry")


class VocabularyOutput(serializers.Serializer):
    events = EventVocabulary(many=True)
    traits = ValuesSeen(many=True)
    tags = KeyedName(many=True)
    segments = KeyedName(many=True)
    roles = KeyedName(many=True)
    consent_channels = serializers.ListField(child=serializers.CharField())
    stages = KeyedName(many=True)


class SegmentVocabularyView(APIView):
    """The names a rule can use, as they occur in the data: event names (with the properties and
    values of their latest occurrences), traits, tags, segments, customer roles, consent channels and
    lifecycle stages. Read from bounded samples of recent events and customers; the rule builder's
    pickers."""

    required_capability = "view_segments"
    permission_classes = [HasCapability]

    @extend_schema(responses=VocabularyOutput)
    def get(self, request):
        show_pii = user_can(request.user, "view_pii")
        return Response(VocabularyOutput(builder_vocabulary(show_pii=show_pii)).data)
