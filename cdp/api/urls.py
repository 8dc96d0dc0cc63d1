from django.urls import path

from cdp.api.customers import CustomerDetailView, CustomerEventsView, CustomerListView
from cdp.api.views import MeView, SchemaView
from connectors.api import (
    AccountListView,
    AccountOptionsView,
    MessageDetailView,
    MessageListView,
    TemplateListView,
)
from journeys.api import (
    GraphValidateView,
    JourneyArchiveView,
    JourneyDetailView,
    JourneyEnrollmentsView,
    JourneyEnrollView,
    JourneyListView,
    JourneyPauseView,
    JourneyPublishView,
    JourneyResumeView,
    JourneyStatsView,
    JourneyTemplateListView,
    JourneyTemplateUseView,
    JourneyTestView,
    JourneyVersionsView,
    NodeTypeListView,
)
from journeys.policy_api import ContactPolicyDetailView, ContactPolicyListView
from segments.api import (
    SegmentDetailView,
    SegmentListView,
    SegmentPreviewView,
    SegmentRefreshView,
    SegmentVocabularyView,
)
from segments.lifecycle_api import (
    CustomerLifecycleView,
    CustomerScoreAdjustmentView,
    ScoringRuleDetailView,
    ScoringRuleListView,
    StageDetailView,
    StageListView,
    StageOrderView,
    TagCustomersView,
    TagDetailView,
    TagListView,
    TagMergeView,
)

urlpatterns = [
    path("schema/", SchemaView.as_view(), name="schema"),
    path("me/", MeView.as_view(), name="api_me"),
    path("channel-accounts/", AccountListView.as_view(), name="api_channel_accounts"),
    path("channel-accounts/options/", AccountOptionsView.as_view(), name="api_channel_account_options"),
    path("message-templates/", TemplateListView.as_view(), name="api_message_templates"),
    path("messages/", MessageListView.as_view(), name="api_messages"),
    path("messages/<int:message_id>/", MessageDetailView.as_view(), name="api_message"),
    path("customers/", CustomerListView.as_view(), name="api_customers"),
    path("customers/<int:customer_id>/", CustomerDetailView.as_view(), name="api_customer"),
    path("customers/<int:customer_id>/events/", CustomerEventsView.as_view(), name="api_customer_events"),
    path(
        "customers/<int:customer_id>/lifecycle/",
        CustomerLifecycleView.as_view(),
        name="api_customer_lifecycle",
    ),
    path(
        "customers/<int:customer_id>/score-adjustments/",
        CustomerScoreAdjustmentView.as_view(),
        name="api_customer_score_adjustments",
    ),
    path("tags/", TagListView.as_view(), name="api_tags"),
    path("tags/<str:key>/", TagDetailView.as_view(), name="api_tag"),
    path("tags/<str:key>/customers/", TagCustomersView.as_view(), name="api_tag_customers"),
    path("tags/<str:key>/merge/", TagMergeView.as_view(), name="api_tag_merge"),
    path("stages/", StageListView.as_view(), name="api_stages"),
    path("stages/order/", StageOrderView.as_view(), name="api_stage_order"),
    path("stages/<str:key>/", StageDetailView.as_view(), name="api_stage"),
    path("scoring-rules/", ScoringRuleListView.as_view(), name="api_scoring_rules"),
    path("scoring-rules/<int:rule_id>/", ScoringRuleDetailView.as_view(), name="api_scoring_rule"),
    path("segments/", SegmentListView.as_view(), name="api_segments"),
    path("segments/vocabulary/", SegmentVocabularyView.as_view(), name="api_segment_vocabulary"),
    path("segments/preview/", SegmentPreviewView.as_view(), name="api_segment_preview"),
    path("segments/<int:segment_id>/", SegmentDetailView.as_view(), name="api_segment"),
    path("segments/<int:segment_id>/refresh/", SegmentRefreshView.as_view(), name="api_segment_refresh"),
    path("journeys/", JourneyListView.as_view(), name="api_journeys"),
    path("journeys/node-types/", NodeTypeListView.as_view(), name="api_journey_node_types"),
    path("journeys/validate/", GraphValidateView.as_view(), name="api_journey_validate"),
    path("journeys/templates/", JourneyTemplateListView.as_view(), name="api_journey_templates"),
    path(
        "journeys/templates/<str:key>/use/", JourneyTemplateUseView.as_view(), name="api_journey_template_use"
    ),
    path("journeys/contact-policy/", ContactPolicyListView.as_view(), name="api_contact_policies"),
    path(
        "journeys/contact-policy/<str:channel>/",
        ContactPolicyDetailView.as_view(),
        name="api_contact_policy",
    ),
    path("journeys/<int:journey_id>/", JourneyDetailView.as_view(), name="api_journey"),
    path("journeys/<int:journey_id>/publish/", JourneyPublishView.as_view(), name="api_journey_publish"),
    path("journeys/<int:journey_id>/pause/", JourneyPauseView.as_view(), name="api_journey_pause"),
    path("journeys/<int:journey_id>/resume/", JourneyResumeView.as_view(), name="api_journey_resume"),
    path("journeys/<int:journey_id>/archive/", JourneyArchiveView.as_view(), name="api_journey_archive"),
    path(
        "journeys/<int:journey_id>/enrollments/",
        JourneyEnrollmentsView.as_view(),
        name="api_journey_enrollments",
    ),
    path("journeys/<int:journey_id>/versions/", JourneyVersionsView.as_view(), name="api_journey_versions"),
    path("journeys/<int:journey_id>/stats/", JourneyStatsView.as_view(), name="api_journey_stats"),
    path("journeys/<int:journey_id>/enroll/", JourneyEnrollView.as_view(), name="api_journey_enroll"),
    path("journeys/<int:journey_id>/test/", JourneyTestView.as_view(), name="api_journey_test"),
]
