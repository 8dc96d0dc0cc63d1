"""Journeys over the API: the node-type palette, journeys with their draft graphs, publishing
(every problem with its node id), pause / resume / archive, enrollments and per-node counts."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.access import user_can
from cdp.api.permissions import HasCapability
from cdp.redaction import redact_fields
from cdp.selectors import customer_visible, customers_visible_to
from journeys.gallery import journey_from_template, templates_list
from journeys.models import Enrollment, Journey, JourneyVersion
from journeys.nodes import palette
from journeys.selectors import journey_enrollments, journey_summary, node_counts, version_conversion
from journeys.services import DraftConflict, journey_enroll, journey_publish, journey_save, journey_set_status
from journeys.testmode import SimulatedEvent, journey_test_run, test_report_shown
from journeys.validation import GraphInvalid, graph_validate


class HandlesWhenOutput(serializers.Serializer):
    field = serializers.CharField(help_text="A field of the node's config")
    equals = serializers.JSONField(help_text="The value that changes the handles")
    handles = serializers.ListField(
        child=serializers.CharField(), help_text="The node's output handles while the field has it"
    )


class NodeTypeOutput(serializers.Serializer):
    type = serializers.CharField(help_text="The node's ``type`` in a graph")
    kind = serializers.ChoiceField(choices=["trigger", "flow", "action"])
    group = serializers.CharField(help_text="The palette group's label, translated")
    label = serializers.CharField()
    description = serializers.CharField()
    icon = serializers.CharField()
    handles = serializers.ListField(child=serializers.CharField(), help_text="Its output handles")
    dynamic_handles = serializers.BooleanField(
        help_text="The handles come from the config (a split's branch ids, plus “else” for a condition)"
    )
    handles_when = HandlesWhenOutput(
        many=True,
        help_text=(
            "Config values that replace the handles, the first that holds winning "
            "(a goal that ends the journey has none)"
        ),
    )
    config_schema = serializers.JSONField(help_text="JSON Schema of the node's config")


class NodeTypeListView(APIView):
    """Every node type a journey can hold, as the canvas's palette, with its config's JSON Schema."""

    required_capability = "view_journeys"
    permission_classes = [HasCapability]

    @extend_schema(responses=NodeTypeOutput(many=True))
    def get(self, request):
        return Response(NodeTypeOutput(palette(), many=True).data)


class GraphProblem(serializers.Serializer):
    node = serializers.CharField(allow_null=True, help_text="The node's id (null: the graph as a whole)")
    field = serializers.CharField(
        allow_blank=True, help_text="Where in the node: config.delay.seconds, edges"
    )
    message = serializers.CharField()
    path = serializers.CharField(
        required=False, help_text="Inside a rule: the JSON path of the condition, e.g. $.and[1].event"
    )


class GraphProblems(serializers.Serializer):
    problems = GraphProblem(many=True)


class GraphInput(serializers.Serializer):
    graph = serializers.JSONField(
        help_text='{"nodes": [{"id", "type", "config", "position"}], "edges": [...]}'
    )


class JourneyInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    draft_graph = serializers.JSONField(required=False, help_text="The graph being edited")
    entry_policy = serializers.ChoiceField(
        choices=Journey.EntryPolicy.choices, default=Journey.EntryPolicy.ONCE
    )
    cooldown_seconds = serializers.IntegerField(required=False, allow_null=True, min_value=1, default=None)
    entry_key_property = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    priority = serializers.IntegerField(required=False, default=0, min_value=-100, max_value=100)
    draft_revision = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        default=None,
        help_text="The draft revision this edit started from: 409 when someone saved the journey since",
    )


class PublishInput(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class VersionOutput(serializers.ModelSerializer):
    published_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = JourneyVersion
        fields = ["id", "number", "published_at", "published_by", "note", "trigger_events", "graph"]


class JourneyOutput(serializers.ModelSerializer):
    live_version = serializers.SerializerMethodField()

    class Meta:
        model = Journey
        fields = [
            "id",
            "name",
            "description",
            "status",
            "draft_graph",
            "draft_revision",
            "entry_policy",
            "cooldown_seconds",
            "entry_key_property",
            "priority",
            "live_version",
            "created_at",
            "updated_at",
        ]

    @extend_schema(responses=serializers.IntegerField(allow_null=True))
    def get_live_version(self, journey) -> int | None:
        """The number of the version new customers enter (null: never published)."""
        return journey.versions.order_by("-number").values_list("number", flat=True).first()


def _errors(error: DjangoValidationError, code=status.HTTP_400_BAD_REQUEST) -> Response:
    return Response(error.message_dict, status=code)


class JourneyListView(APIView):
    required_capability = {"GET": "view_journeys", "POST": "manage_journeys"}
    permission_classes = [HasCapability]

    @extend_schema(responses=JourneyOutput(many=True))
    def get(self, request):
        return Response(JourneyOutput(Journey.objects.all(), many=True).data)

    @extend_schema(request=JourneyInput, responses={201: JourneyOutput})
    def post(self, request):
        data = JourneyInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            journey = journey_save(actor=request.user, **data.validated_data)
        except DjangoValidationError as error:
            return _errors(error)
        return Response(JourneyOutput(journey).data, status=status.HTTP_201_CREATED)


class JourneyDetailView(APIView):
    required_capability = {"GET": "view_journeys", "PUT": "manage_journeys"}
    permission_classes = [HasCapability]

    @extend_schema(responses=JourneyOutput)
    def get(self, request, journey_id: int):
        return Response(JourneyOutput(get_object_or_404(Journey, pk=journey_id)).data)

    @extend_schema(request=JourneyInput, responses={200: JourneyOutput})
    def put(self, request, journey_id: int):
        """Changes the draft and the settings; customers in the journey keep their published version."""
        journey = get_object_or_404(Journey, pk=journey_id)
        data = JourneyInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            journey = journey_save(actor=request.user, journey=journey, **data.validated_data)
        except DraftConflict as conflict:
            return Response(
                {
                    "detail": _("Someone else saved this journey since you opened it."),
                    "current": JourneyOutput(conflict.journey).data,
                },
                status=status.HTTP_409_CONFLICT,
            )
        except DjangoValidationError as error:
            return _errors(error)
        return Response(JourneyOutput(journey).data)


class GraphValidateView(APIView):
    """Every problem a graph would be refused for at publishing, without publishing it."""

    required_capability = "view_journeys"
    permission_classes = [HasCapability]

    @extend_schema(request=GraphInput, responses=GraphProblems)
    def post(self, request):
        data = GraphInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response({"problems": graph_validate(data.validated_data["graph"])})


class JourneyPublishView(APIView):
    """Publishes the draft as a new immutable version; 400 with every problem and its node id."""

    required_capability = "manage_journeys"
    permission_classes = [HasCapability]

    @extend_schema(request=PublishInput, responses={201: VersionOutput, 400: GraphProblems})
    def post(self, request, journey_id: int):
        journey = get_object_or_404(Journey, pk=journey_id)
        data = PublishInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            version = journey_publish(journey=journey, actor=request.user, note=data.validated_data["note"])
        except GraphInvalid as error:
            return Response({"problems": error.problems}, status=status.HTTP_400_BAD_REQUEST)
        except DjangoValidationError as error:
            return _errors(error, status.HTTP_409_CONFLICT)
        return Response(VersionOutput(version).data, status=status.HTTP_201_CREATED)


def _status_view(new_status: str, doc: str):
    class JourneyStatusView(APIView):
        required_capability = "manage_journeys"
        permission_classes = [HasCapability]

        @extend_schema(request=None, responses={200: JourneyOutput}, description=doc)
        def post(self, request, journey_id: int):
            journey = get_object_or_404(Journey, pk=journey_id)
            try:
                journey = journey_set_status(journey=journey, status=new_status, actor=request.user)
            except DjangoValidationError as error:
                return _errors(error, status.HTTP_409_CONFLICT)
            return Response(JourneyOutput(journey).data)

    JourneyStatusView.__name__ = f"Journey{new_status.title()}View"
    return JourneyStatusView


JourneyPauseView = _status_view(
    Journey.Status.PAUSED, "Nobody enters and nobody moves on until it is resumed."
)
JourneyResumeView = _status_view(Journey.Status.ACTIVE, "Customers enter again and those in it move on.")
JourneyArchiveView = _status_view(
    Journey.Status.ARCHIVED, "Everyone still in the journey exits; it cannot return."
)


class JourneyVersionsView(APIView):
    """The journey's published versions, newest first, each with its graph and note."""

    required_capability = "view_journeys"
    permission_classes = [HasCapability]

    @extend_schema(responses=VersionOutput(many=True))
    def get(self, request, journey_id: int):
        journey = get_object_or_404(Journey, pk=journey_id)
        versions = journey.versions.select_related("published_by").order_by("-number")
        return Response(VersionOutput(versions, many=True).data)


class EnrollmentOutput(serializers.ModelSerializer):
    """An enrollment; its entry key and reason (which may quote the trigger's properties) masked
    for readers without ``view_pii``."""

    version = serializers.IntegerField(source="version.number")

    def to_representation(self, enrollment):
        data = super().to_representation(enrollment)
        show_pii = user_can(self.context["request"].user, "view_pii")
        return redact_fields([data], "entry_key", "reason", show_pii=show_pii)[0]

    class Meta:
        model = Enrollment
        fields = [
            "id",
            "customer_id",
            "version",
            "entry_key",
            "node_id",
            "visit",
            "phase",
            "status",
            "wake_at",
            "waiting_events",
            "reason",
            "goal_reached_at",
            "enrolled_at",
            "finished_at",
        ]


class JourneyEnrollmentsView(APIView):
    required_capability = "view_journeys"
    permission_classes = [HasCapability]

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=Enrollment.Status.values),
            OpenApiParameter("node", str, description="Only the customers now at this node"),
            OpenApiParameter("limit", int, description="At most this many, newest first (default 100)"),
        ],
        responses=EnrollmentOutput(many=True),
    )
    def get(self, request, journey_id: int):
        journey = get_object_or_404(Journey, pk=journey_id)
        try:
            limit = min(max(int(request.query_params.get("limit", 100)), 1), 1000)
        except ValueError:
            limit = 100
        enrollments = journey_enrollments(
            journey=journey,
            status=request.query_params.get("status", ""),
            node_id=request.query_params.get("node", ""),
        ).filter(customers_visible_to(request.user, via="customer"))[:limit]
        return Response(EnrollmentOutput(enrollments, many=True, context={"request": request}).data)


class NodeCount(serializers.Serializer):
    entered = serializers.IntegerField(help_text="Visits to the node")
    waiting = serializers.IntegerField(help_text="Customers at the node now")
    left = serializers.DictField(
        child=serializers.IntegerField(), help_text="Visits that left by each handle"
    )


class VersionConversion(serializers.Serializer):
    number = serializers.IntegerField()
    published_at = serializers.DateTimeField()
    entered = serializers.IntegerField()
    active = serializers.IntegerField()
    converted = serializers.IntegerField(help_text="Enrollments of this version that reached a goal")
    rate = serializers.FloatField(allow_null=True, help_text="converted / entered (null: nobody entered)")


class JourneyStatsOutput(serializers.Serializer):
    entered = serializers.IntegerField()
    active = serializers.IntegerField()
    converted = serializers.IntegerField()
    failed = serializers.IntegerField()
    nodes = serializers.DictField(child=NodeCount(), help_text="By node id")
    versions = VersionConversion(many=True, help_text="Goal conversion per published version, newest first")


class JourneyStatsView(APIView):
    """How many entered the journey, are in it, converted and failed; per node, how many entered it,
    are there now, and left by each handle."""

    required_capability = "view_journeys"
    permission_classes = [HasCapability]

    @extend_schema(responses=JourneyStatsOutput)
    def get(self, request, journey_id: int):
        journey = get_object_or_404(Journey, pk=journey_id)
        return Response(
            JourneyStatsOutput(
                {
                    **journey_summary(journey=journey),
                    "nodes": node_counts(journey=journey),
                    "versions": version_conversion(journey=journey),
                }
            ).data
        )


# -- enrolling over the API ------------------------------------------------------------------------


class EnrollInput(serializers.Serializer):
    customer_id = serializers.IntegerField(required=False, help_text="The customer's id")
    identities = serializers.DictField(
        child=serializers.CharField(max_length=255),
        required=False,
        help_text='Or identifiers naming the customer, e.g. {"phone": "+8613800138000"}; created if new',
    )
    context = serializers.DictField(
        required=False, default=dict, help_text="Data the journey can read (templates, keyed waits)"
    )
    trigger = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="The API trigger's node id, if the journey has several",
    )

    def validate_identities(self, identities: dict) -> dict:
        from cdp.api.customers import CustomerUpsertInput  # one check of identity types for the API

        return CustomerUpsertInput().validate_identities(identities)

    def validate(self, data):
        if ("customer_id" in data) == ("identities" in data):
            raise serializers.ValidationError({"customer_id": ["Give either customer_id or identities."]})
        return data


class EnrollOutput(serializers.Serializer):
    enrolled = serializers.BooleanField(help_text="False: the entry policy kept the customer out")
    customer_id = serializers.IntegerField()
    enrollment = EnrollmentOutput(allow_null=True)


def _customer_named(data: dict, user):
    """The customer an enroll or test request names (by id; by identifiers, created if new), among
    those the caller's roles let them see."""
    from cdp.customers import customer_resolve
    from cdp.scoped_upsert import OutOfScope, customer_upsert_in_scope

    if data.get("customer_id") is not None:
        customer = customer_resolve(customer_id=data["customer_id"])
        if customer is None or not customer_visible(user, customer):
            raise DjangoValidationError({"customer_id": [f"There is no customer {data['customer_id']}."]})
        return customer
    try:
        return customer_upsert_in_scope(user=user, identities=data["identities"], traits={})[0]
    except (ValueError, OutOfScope) as error:
        raise DjangoValidationError({"identities": [str(error)]}) from None


class JourneyEnrollView(APIView):
    """Enrolls one customer at the journey's API trigger, with context data the journey can read."""

    required_capability = "manage_journeys"
    permission_classes = [HasCapability]

    @extend_schema(request=EnrollInput, responses={200: EnrollOutput, 201: EnrollOutput})
    def post(self, request, journey_id: int):
        journey = get_object_or_404(Journey, pk=journey_id)
        data = EnrollInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            customer = _customer_named(data.validated_data, request.user)
            enrollment = journey_enroll(
                journey=journey,
                customer=customer,
                context=data.validated_data["context"],
                trigger=data.validated_data["trigger"],
            )
        except DjangoValidationError as error:
            conflict = "journey" in error.message_dict
            return _errors(error, status.HTTP_409_CONFLICT if conflict else status.HTTP_400_BAD_REQUEST)
        body = {
            "enrolled": enrollment is not None,
            "customer_id": customer.pk,
            "enrollment": EnrollmentOutput(enrollment, context={"request": request}).data
            if enrollment
            else None,
        }
        return Response(body, status=status.HTTP_201_CREATED if enrollment else status.HTTP_200_OK)


# -- test mode -------------------------------------------------------------------------------------


class SimulatedEventInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    after_seconds = serializers.IntegerField(min_value=0, default=0, help_text="After the customer entered")
    properties = serializers.DictField(required=False, default=dict)


class TestRunInput(serializers.Serializer):
    customer_id = serializers.IntegerField(help_text="The customer the journey is tried on")
    version = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        help_text="A published version (null: the draft)",
    )
    trigger = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Start at this trigger"
    )
    context = serializers.DictField(required=False, default=dict, help_text="The trigger event's properties")
    events = SimulatedEventInput(
        many=True, required=False, default=list, help_text="What the customer does meanwhile"
    )
    outcomes = serializers.DictField(
        child=serializers.CharField(max_length=40),
        required=False,
        default=dict,
        help_text="Per node: the handle a webhook leaves by, or how a task is closed (done, not_reached)",
    )


class TestStepOutput(serializers.Serializer):
    node = serializers.CharField()
    type = serializers.CharField()
    label = serializers.CharField(allow_blank=True)
    entered_at = serializers.DateTimeField(help_text="On the simulated clock")
    left_at = serializers.DateTimeField(allow_null=True)
    outcome = serializers.CharField(
        allow_blank=True, help_text="The handle it left by (end: the journey ended)"
    )
    reason = serializers.CharField(allow_blank=True, help_text="Why: the rule that held, the message's fate")


class TestMessageOutput(serializers.Serializer):
    node = serializers.CharField()
    channel = serializers.CharField()
    template = serializers.CharField(allow_blank=True)
    recipient = serializers.CharField(allow_blank=True)
    status = serializers.CharField()
    reason = serializers.CharField(allow_blank=True)


class TestTaskOutput(serializers.Serializer):
    node = serializers.CharField()
    title = serializers.CharField()
    assignee = serializers.CharField(allow_null=True)
    due_at = serializers.DateTimeField()
    status = serializers.CharField()


class TestRunOutput(serializers.Serializer):
    status = serializers.ChoiceField(choices=Enrollment.Status.values)
    reason = serializers.CharField(allow_blank=True)
    waiting_for = serializers.ListField(
        child=serializers.CharField(), help_text="Still waiting for these events (none was given)"
    )
    started_at = serializers.DateTimeField()
    simulated_until = serializers.DateTimeField()
    problems = GraphProblem(many=True, help_text="What publishing would refuse")
    steps = TestStepOutput(many=True)
    messages = TestMessageOutput(many=True, help_text="Sent to the sandbox only")
    tasks = TestTaskOutput(many=True)


class JourneyTestView(APIView):
    """Test mode: runs the draft (or a version) for one customer on a simulated clock, sends going to
    the sandbox; returns the path step by step with each decision's reason. Nothing is kept."""

    required_capability = "manage_journeys"
    permission_classes = [HasCapability]

    @extend_schema(request=TestRunInput, responses={200: TestRunOutput})
    def post(self, request, journey_id: int):
        journey = get_object_or_404(Journey, pk=journey_id)
        data = TestRunInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            result = journey_test_run(
                journey=journey,
                customer=_customer_named({"customer_id": values["customer_id"]}, request.user),
                version=values["version"],
                trigger=values["trigger"],
                context=values["context"],
                events=[SimulatedEvent(**event) for event in values["events"]],
                outcomes=values["outcomes"],
            )
        except DjangoValidationError as error:
            return _errors(error)
        return Response(
            TestRunOutput(test_report_shown(result, show_pii=user_can(request.user, "view_pii"))).data
        )


# -- the templates gallery -------------------------------------------------------------------------


class TemplateSegmentOutput(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField(allow_blank=True)
    suggested_rule = serializers.JSONField(allow_null=True, help_text="A rule to start the segment from")


class TemplateNeedsOutput(serializers.Serializer):
    tags = serializers.ListField(child=serializers.CharField(), help_text="Created when missing")
    segments = TemplateSegmentOutput(many=True, help_text="Left for the marketer to create")
    stages = serializers.ListField(child=serializers.CharField(), help_text="Left for an admin to create")
    message_templates = serializers.ListField(
        child=serializers.CharField(), help_text="Left for the marketer to create (provider-approved content)"
    )


class JourneyTemplateOutput(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    category = serializers.CharField()
    entry_policy = serializers.ChoiceField(choices=Journey.EntryPolicy.choices)
    needs = TemplateNeedsOutput()
    graph = serializers.JSONField(help_text="Channel accounts are 0 until the template is used")


class TemplateUseInput(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)


class TemplateUseOutput(serializers.Serializer):
    journey = JourneyOutput()
    created_tags = serializers.ListField(child=serializers.CharField())
    problems = GraphProblem(many=True, help_text="What publishing would still refuse: what to complete")


class JourneyTemplateListView(APIView):
    """The gallery of ready journeys, translated, with what each needs from the workspace."""

    required_capability = "view_journeys"
    permission_classes = [HasCapability]

    @extend_schema(responses=JourneyTemplateOutput(many=True))
    def get(self, request):
        return Response(JourneyTemplateOutput(templates_list(), many=True).data)


class JourneyTemplateUseView(APIView):
    """A new draft journey from a gallery template: its tags created when missing, its sends on the
    workspace's accounts; answers with what is still to complete before publishing."""

    required_capability = "manage_journeys"
    permission_classes = [HasCapability]

    @extend_schema(request=TemplateUseInput, responses={201: TemplateUseOutput})
    def post(self, request, key: str):
        data = TemplateUseInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            journey, created, problems = journey_from_template(
                key=key, actor=request.user, name=data.validated_data["name"]
            )
        except LookupError:
            return Response(
                {"key": [f"There is no journey template “{key}”."]}, status=status.HTTP_404_NOT_FOUND
            )
        body = {"journey": JourneyOutput(journey).data, "created_tags": created, "problems": problems}
        return Response(body, status=status.HTTP_201_CREATED)
