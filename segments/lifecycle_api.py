"""Tags, lifecycle stages and scoring over the API: the same services the pages use, so a rule is
checked the same way (every problem with its JSON path) and a deletion that rules depend on is
refused with their names (409)."""

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.access import user_can
from cdp.api.permissions import HasCapability
from cdp.models import Customer
from cdp.selectors import customers_visible_to
from segments.api import RuleProblems
from segments.models import CustomerStage, LifecycleStage, ScoringRule, Segment, Tag, TagGroup
from segments.rules import RuleError
from segments.scoring import score_adjust, scoring_rule_save
from segments.selectors import customer_rule_facts
from segments.stages import stage_delete, stage_save, stages_reorder
from segments.tags import (
    SEGMENT_TAGGING_REFUSED,
    customers_tag,
    customers_untag,
    segment_members_tag,
    tag_change,
    tag_delete,
    tag_save,
    tags_merge,
)


def _refused(error: Exception, status_code=status.HTTP_400_BAD_REQUEST) -> Response:
    if isinstance(error, RuleError):
        return Response({"errors": error.problems}, status=status.HTTP_400_BAD_REQUEST)
    return Response(error.message_dict, status=status_code)


# --------------------------------------------------------------------------------------------------
# Tags


class TagOutput(serializers.ModelSerializer):
    group = serializers.CharField(source="group.name", allow_null=True, default=None)
    holder_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Tag
        fields = ["key", "name", "group", "color", "kind", "rule", "holder_count"]


class TagInput(serializers.Serializer):
    key = serializers.CharField(max_length=100)
    name = serializers.CharField(max_length=100)
    group = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="A tag group's name"
    )
    color = serializers.CharField(required=False, allow_blank=True, default="")
    rule = serializers.JSONField(
        required=False, default=None, help_text="Only for a dynamic tag; see docs/rules.md"
    )


class TagChange(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    group = serializers.CharField(required=False, allow_blank=True, default="")
    color = serializers.CharField(required=False, allow_blank=True, default="")
    rule = serializers.JSONField(required=False, default=None)


class TagCustomersInput(serializers.Serializer):
    action = serializers.ChoiceField(choices=["add", "remove"], default="add")
    customer_ids = serializers.ListField(child=serializers.IntegerField(), required=False, max_length=10_000)
    segment = serializers.CharField(required=False, help_text="Every member of this segment (by key)")

    def validate(self, data):
        if bool(data.get("customer_ids")) == bool(data.get("segment")):
            raise serializers.ValidationError("give either customer_ids or segment")
        return data


class TagCustomersOutput(serializers.Serializer):
    changed = serializers.IntegerField(help_text="Customers who got (or lost) the tag now")
    unknown_ids = serializers.ListField(child=serializers.IntegerField())


class TagMergeInput(serializers.Serializer):
    into = serializers.CharField(help_text="The key of the tag that stays")


class Refusal(serializers.Serializer):
    detail = serializers.DictField()


def _group(name: str):
    if not name:
        return None
    return get_object_or_404(TagGroup, name=name)


def _with_counts(tags):
    from django.db.models import Count

    return tags.select_related("group").annotate(holder_count=Count("holders"))


class TagListView(APIView):
    required_capability = {"GET": "view_segments", "POST": "manage_segments"}
    permission_classes = [HasCapability]

    @extend_schema(responses=TagOutput(many=True))
    def get(self, request):
        return Response(TagOutput(_with_counts(Tag.objects.order_by("name")), many=True).data)

    @extend_schema(request=TagInput, responses={201: TagOutput, 400: RuleProblems})
    def post(self, request):
        data = TagInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            tag = tag_save(
                key=values["key"],
                name=values["name"],
                group=_group(values["group"]),
                color=values["color"],
                rule_data=values["rule"],
                actor=request.user,
            )
        except (RuleError, DjangoValidationError) as error:
            return _refused(error)
        return Response(TagOutput(_with_counts(Tag.objects.filter(pk=tag.pk)).get()).data, status=201)


class TagDetailView(APIView):
    required_capability = {"GET": "view_segments", "PATCH": "manage_segments", "DELETE": "manage_segments"}
    permission_classes = [HasCapability]

    @extend_schema(responses=TagOutput)
    def get(self, request, key: str):
        return Response(TagOutput(get_object_or_404(_with_counts(Tag.objects.all()), key=key)).data)

    @extend_schema(request=TagChange, responses={200: TagOutput, 400: RuleProblems})
    def patch(self, request, key: str):
        tag = get_object_or_404(Tag, key=key)
        data = TagChange(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            tag_change(
                tag=tag,
                name=values["name"],
                color=values["color"],
                group=_group(values["group"]),
                rule_data=values["rule"],
                actor=request.user,
            )
        except (RuleError, DjangoValidationError) as error:
            return _refused(error)
        return Response(TagOutput(_with_counts(Tag.objects.filter(pk=tag.pk)).get()).data)

    @extend_schema(responses={200: TagCustomersOutput, 409: Refusal})
    def delete(self, request, key: str):
        tag = get_object_or_404(Tag, key=key)
        try:
            lost = tag_delete(tag=tag, actor=request.user)
        except DjangoValidationError as error:
            return _refused(error, status.HTTP_409_CONFLICT)
        return Response({"changed": lost, "unknown_ids": []})


class TagCustomersView(APIView):
    """Tags or untags customers in bulk: a list of ids, or every member of a segment."""

    required_capability = "edit_customers"
    permission_classes = [HasCapability]

    @extend_schema(request=TagCustomersInput, responses={200: TagCustomersOutput})
    def post(self, request, key: str):
        tag = get_object_or_404(Tag, key=key)
        data = TagCustomersInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        remove = values["action"] == "remove"
        if tag.kind != Tag.Kind.STATIC:
            return Response(
                {"tag": ["A dynamic tag follows its rule; it cannot be set by hand."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        if values.get("segment"):
            if not user_can(request.user, "manage_segments"):
                raise PermissionDenied(SEGMENT_TAGGING_REFUSED)
            segment = get_object_or_404(Segment, key=values["segment"])
            changed = segment_members_tag(segment=segment, tag=tag, actor=request.user, remove=remove)
            return Response({"changed": changed, "unknown_ids": []})
        wanted = set(values["customer_ids"])
        known = set(
            Customer.objects.filter(
                customers_visible_to(request.user), pk__in=wanted, merged_into=None
            ).values_list("pk", flat=True)
        )
        change = customers_untag if remove else customers_tag
        changed = change(customer_ids=sorted(known), tag=tag, actor=request.user, origin="api")
        return Response({"changed": changed, "unknown_ids": sorted(wanted - known)})


class TagMergeView(APIView):
    required_capability = "manage_segments"
    permission_classes = [HasCapability]

    @extend_schema(request=TagMergeInput, responses={200: TagCustomersOutput, 409: Refusal})
    def post(self, request, key: str):
        source = get_object_or_404(Tag, key=key)
        data = TagMergeInput(data=request.data)
        data.is_valid(raise_exception=True)
        into = get_object_or_404(Tag, key=data.validated_data["into"])
        try:
            gained = tags_merge(source=source, into=into, actor=request.user)
        except DjangoValidationError as error:
            return _refused(error, status.HTTP_409_CONFLICT)
        return Response({"changed": gained, "unknown_ids": []})


# --------------------------------------------------------------------------------------------------
# Lifecycle stages


class StageOutput(serializers.ModelSerializer):
    customer_count = serializers.SerializerMethodField()

    class Meta:
        model = LifecycleStage
        fields = ["key", "name", "color", "position", "rule", "customer_count"]

    def get_customer_count(self, stage) -> int:
        return CustomerStage.objects.filter(stage=stage).count()


class StageInput(serializers.Serializer):
    key = serializers.CharField(max_length=100)
    name = serializers.CharField(max_length=100)
    color = serializers.CharField(required=False, default="#2563eb")
    rule = serializers.JSONField()


class StageOrderInput(serializers.Serializer):
    keys = serializers.ListField(child=serializers.CharField(), help_text="Every stage's key, first to last")


class StageListView(APIView):
    required_capability = {"GET": "view_segments", "POST": "manage_segments"}
    permission_classes = [HasCapability]

    @extend_schema(responses=StageOutput(many=True))
    def get(self, request):
        return Response(StageOutput(LifecycleStage.objects.all(), many=True).data)

    @extend_schema(request=StageInput, responses={201: StageOutput, 400: RuleProblems})
    def post(self, request):
        data = StageInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        stage = LifecycleStage.objects.filter(key=values["key"]).first()
        try:
            saved = stage_save(
                key=values["key"],
                name=values["name"],
                color=values["color"],
                rule_data=values["rule"],
                stage=stage,
                actor=request.user,
            )
        except (RuleError, DjangoValidationError) as error:
            return _refused(error)
        return Response(StageOutput(saved).data, status=200 if stage else 201)


class StageDetailView(APIView):
    required_capability = {"GET": "view_segments", "DELETE": "manage_segments"}
    permission_classes = [HasCapability]

    @extend_schema(responses=StageOutput)
    def get(self, request, key: str):
        return Response(StageOutput(get_object_or_404(LifecycleStage, key=key)).data)

    @extend_schema(responses={200: TagCustomersOutput, 409: Refusal})
    def delete(self, request, key: str):
        stage = get_object_or_404(LifecycleStage, key=key)
        try:
            moved = stage_delete(stage=stage, actor=request.user)
        except DjangoValidationError as error:
            return _refused(error, status.HTTP_409_CONFLICT)
        return Response({"changed": moved, "unknown_ids": []})


class StageOrderView(APIView):
    required_capability = "manage_segments"
    permission_classes = [HasCapability]

    @extend_schema(request=StageOrderInput, responses={200: StageOutput(many=True)})
    def post(self, request):
        data = StageOrderInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            stages_reorder(keys=data.validated_data["keys"], actor=request.user)
        except DjangoValidationError as error:
            return _refused(error)
        return Response(StageOutput(LifecycleStage.objects.all(), many=True).data)


# --------------------------------------------------------------------------------------------------
# Scoring


class ScoringRuleSerializer(serializers.ModelSerializer):
    where = serializers.JSONField(required=False, default=list)

    class Meta:
        model = ScoringRule
        fields = [
            "id",
            "name",
            "event",
            "where",
            "points",
            "cap",
            "cap_period",
            "expires_after_days",
            "active",
        ]
        read_only_fields = ["id", "active"]
        # The service checks names and values, every field at once.
        extra_kwargs = {
            "name": {"required": False, "allow_blank": True},
            "event": {"required": False, "allow_blank": True},
        }


class ScoringRuleListView(APIView):
    required_capability = {"GET": "view_segments", "POST": "manage_segments"}
    permission_classes = [HasCapability]

    @extend_schema(responses=ScoringRuleSerializer(many=True))
    def get(self, request):
        return Response(ScoringRuleSerializer(ScoringRule.objects.all(), many=True).data)

    @extend_schema(request=ScoringRuleSerializer, responses={201: ScoringRuleSerializer})
    def post(self, request):
        return _scoring_rule_write(request, None)


class ScoringRuleDetailView(APIView):
    required_capability = {"GET": "view_segments", "PUT": "manage_segments"}
    permission_classes = [HasCapability]

    @extend_schema(responses=ScoringRuleSerializer)
    def get(self, request, rule_id: int):
        return Response(ScoringRuleSerializer(get_object_or_404(ScoringRule, pk=rule_id)).data)

    @extend_schema(request=ScoringRuleSerializer, responses={200: ScoringRuleSerializer})
    def put(self, request, rule_id: int):
        return _scoring_rule_write(request, get_object_or_404(ScoringRule, pk=rule_id))


def _scoring_rule_write(request, rule: ScoringRule | None) -> Response:
    data = ScoringRuleSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    values = data.validated_data
    try:
        saved = scoring_rule_save(
            name=values.get("name", ""),
            event=values.get("event", ""),
            where=values.get("where") or [],
            points=values["points"],
            cap=values.get("cap"),
            cap_period=values.get("cap_period", ScoringRule.Period.DAY),
            expires_after_days=values.get("expires_after_days"),
            rule=rule,
            actor=request.user,
        )
    except DjangoValidationError as error:
        return _refused(error)
    return Response(ScoringRuleSerializer(saved).data, status=201 if rule is None else 200)


# --------------------------------------------------------------------------------------------------
# One customer


class LedgerEntry(serializers.Serializer):
    rule = serializers.CharField(source="rule_name", help_text="Empty for points given by hand")
    event = serializers.CharField(source="event_name")
    points = serializers.IntegerField()
    happened_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    adjusted_by = serializers.CharField(
        source="adjusted_by.username", allow_null=True, default=None, help_text="Who gave the points by hand"
    )
    reason = serializers.CharField(help_text="Why, for points given by hand")


class ScoreAdjustmentInput(serializers.Serializer):
    points = serializers.IntegerField(help_text="Points given (above 0) or taken (below 0), at most 10,000")
    reason = serializers.CharField(max_length=200, help_text="Why, shown in the ledger")
    lapse_days = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="The points lapse after this many days"
    )


class CustomerScoreAdjustmentView(APIView):
    """Points given or taken by hand, with the reason; rules reading the score follow."""

    required_capability = "edit_customers"
    permission_classes = [HasCapability]

    @extend_schema(request=ScoreAdjustmentInput, responses={201: LedgerEntry})
    def post(self, request, customer_id: int):
        customer = get_object_or_404(
            Customer.objects.filter(customers_visible_to(request.user)), pk=customer_id
        )
        given = ScoreAdjustmentInput(data=request.data)
        given.is_valid(raise_exception=True)
        try:
            entry = score_adjust(customer=customer, **given.validated_data, actor=request.user)
        except DjangoValidationError as error:
            return _refused(error)
        return Response(LedgerEntry(entry).data, status=status.HTTP_201_CREATED)


class CustomerLifecycleOutput(serializers.Serializer):
    stage = serializers.CharField(allow_null=True)
    stage_since = serializers.DateTimeField(allow_null=True)
    score = serializers.IntegerField()
    ledger = LedgerEntry(many=True)
    segments = serializers.ListField(child=serializers.CharField())
    tags = serializers.ListField(child=serializers.CharField())


class CustomerLifecycleView(APIView):
    """A customer's stage, score (with the latest ledger entries), segments and tags."""

    required_capability = "view_customers"
    permission_classes = [HasCapability]

    @extend_schema(responses=CustomerLifecycleOutput)
    def get(self, request, customer_id: int):
        customer = get_object_or_404(
            Customer.objects.filter(customers_visible_to(request.user)), pk=customer_id
        )
        facts = customer_rule_facts(customer=customer)
        return Response(
            CustomerLifecycleOutput(
                {
                    "stage": facts.stage.stage.key if facts.stage else None,
                    "stage_since": facts.stage.entered_at if facts.stage else None,
                    "score": facts.score,
                    "ledger": facts.ledger,
                    "segments": [segment.key for segment in facts.segments],
                    "tags": sorted(customer.tags.values_list("tag__key", flat=True)),
                }
            ).data
        )
