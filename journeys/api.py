"""Journeys over the API: the node-type palette, journeys with their draft graphs, publishing
(every problem with its node id), pause / resume / archive, enrollments and per-node counts."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.api.permissions import HasCapability
from journeys.models import Enrollment, Journey, JourneyVersion
from journeys.nodes import palette
from journeys.selectors import journey_enrollments, journey_summary, node_counts
from journeys.services import DraftConflict, journey_publish, journey_save, journey_set_status
from journeys.validation import GraphInvalid, graph_validate


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
    version = serializers.IntegerField(source="version.number")

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
        )[:limit]
        return Response(EnrollmentOutput(enrollments, many=True).data)


class NodeCount(serializers.Serializer):
    entered = serializers.IntegerField(help_text="Visits to the node")
    waiting = serializers.IntegerField(help_text="Customers at the node now")
    left = serializers.DictField(
        child=serializers.IntegerField(), help_text="Visits that left by each handle"
    )


class JourneyStatsOutput(serializers.Serializer):
    entered = serializers.IntegerField()
    active = serializers.IntegerField()
    converted = serializers.IntegerField()
    failed = serializers.IntegerField()
    nodes = serializers.DictField(child=NodeCount(), help_text="By node id")


class JourneyStatsView(APIView):
    """How many entered the journey, are in it, converted and failed; per node, how many entered it,
    are there now, and left by each handle."""

    required_capability = "view_journeys"
    permission_classes = [HasCapability]

    @extend_schema(responses=JourneyStatsOutput)
    def get(self, request, journey_id: int):
        journey = get_object_or_404(Journey, pk=journey_id)
        return Response({**journey_summary(journey=journey), "nodes": node_counts(journey=journey)})
