from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path, re_path
from django.views.i18n import JavaScriptCatalog, set_language

from cdp import customer_views, import_views, source_views, tracking_views, views
from connectors import views as connector_views
from journeys import policy_views as journey_policy_views
from journeys import views as journey_views
from segments import segment_views, stage_views
from segments import views as tag_views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", login_not_required(auth_views.LogoutView.as_view()), name="logout"),
    path(
        "invitation/<uidb64>/<token>/",
        views.AcceptInvitationView.as_view(),
        name="accept_invitation",
    ),
    path("i18n/setlang/", login_not_required(set_language), name="set_language"),
    path("i18n/js/", login_not_required(JavaScriptCatalog.as_view()), name="javascript_catalog"),
    path("customers/", customer_views.customer_list, name="customers"),
    path("customers/<int:customer_id>/", customer_views.customer_profile, name="customer"),
    path("customers/<int:customer_id>/timeline/", customer_views.customer_timeline, name="customer_timeline"),
    path("customers/<int:customer_id>/notes/", customer_views.customer_note_add, name="customer_note"),
    path("customers/<int:customer_id>/owner/", customer_views.customer_owner_assign, name="customer_owner"),
    path("customers/<int:customer_id>/score/", customer_views.customer_score_adjust, name="customer_score"),
    path("customers/<int:customer_id>/merge/", customer_views.customer_merge, name="customer_merge"),
    path(
        "customers/<int:customer_id>/merges/<int:log_id>/undo/",
        customer_views.customer_unmerge,
        name="customer_unmerge",
    ),
    path("customers/reviews/", customer_views.merge_reviews, name="merge_reviews"),
    path("customers/import/", import_views.imports, name="imports"),
    path("customers/import/<int:job_id>/rejects.csv", import_views.import_rejects, name="import_rejects"),
    path(
        "customers/reviews/<int:review_id>/", customer_views.merge_review_resolve, name="merge_review_resolve"
    ),
    path("segments/", segment_views.segments, name="segments"),
    path("segments/new/", segment_views.segment_new, name="segment_new"),
    path("segments/static/new/", segment_views.segment_static_create, name="segment_static_create"),
    path("segments/<int:segment_id>/", segment_views.segment_detail, name="segment"),
    path("segments/<int:segment_id>/edit/", segment_views.segment_edit, name="segment_edit"),
    path("segments/<int:segment_id>/members/", segment_views.segment_members, name="segment_members"),
    path("segments/<int:segment_id>/refresh/", segment_views.segment_refresh_now, name="segment_refresh"),
    path("segments/<int:segment_id>/delete/", segment_views.segment_remove, name="segment_delete"),
    path("segments/<int:segment_id>/upload/", segment_views.segment_upload, name="segment_upload"),
    path("segments/<int:segment_id>/members.csv", segment_views.segment_export, name="segment_export"),
    path("tags/", tag_views.tags, name="tags"),
    path("tags/new/", tag_views.tag_create, name="tag_create"),
    path("tags/new/dynamic/", tag_views.tag_dynamic_new, name="tag_dynamic_new"),
    path("tags/<int:tag_id>/", tag_views.tag_detail, name="tag"),
    path("tags/<int:tag_id>/rule/", tag_views.tag_rule_edit, name="tag_rule"),
    path("tags/<int:tag_id>/edit/", tag_views.tag_edit, name="tag_edit"),
    path("tags/<int:tag_id>/bulk/", tag_views.tag_bulk, name="tag_bulk"),
    path("tags/<int:tag_id>/merge/", tag_views.tag_merge, name="tag_merge"),
    path("tags/<int:tag_id>/delete/", tag_views.tag_remove, name="tag_delete"),
    path("customers/<int:customer_id>/tags/", tag_views.customer_tag_add, name="customer_tag_add"),
    path(
        "customers/<int:customer_id>/tags/<int:tag_id>/remove/",
        tag_views.customer_tag_remove,
        name="customer_tag_remove",
    ),
    path("lifecycle/", stage_views.lifecycle, name="lifecycle"),
    path("lifecycle/stages/new/", stage_views.stage_edit, name="lifecycle_stage_new"),
    path("lifecycle/stages/<int:stage_id>/", stage_views.stage_edit, name="lifecycle_stage"),
    path("lifecycle/stages/<int:stage_id>/move/", stage_views.stage_move, name="lifecycle_stage_move"),
    path("lifecycle/stages/<int:stage_id>/delete/", stage_views.stage_remove, name="lifecycle_stage_delete"),
    path("lifecycle/scoring/", stage_views.scoring, name="scoring"),
    path("lifecycle/scoring/<int:rule_id>/", stage_views.scoring, name="scoring_rule"),
    path("lifecycle/scoring/<int:rule_id>/pause/", stage_views.scoring_toggle, name="scoring_rule_toggle"),
    path("journeys/", journey_views.journeys, name="journeys"),
    path("journeys/new/", journey_views.journey_new, name="journey_new"),
    path("journeys/templates/", journey_views.journey_gallery, name="journey_gallery"),
    path(
        "journeys/templates/<str:key>/use/", journey_views.journey_template_use, name="journey_template_use"
    ),
    path("journeys/<int:journey_id>/", journey_views.journey, name="journey"),
    path("journeys/<int:journey_id>/edit/", journey_views.journey_edit, name="journey_edit"),
    path("journeys/<int:journey_id>/nodes/<str:node_id>/", journey_views.journey_node, name="journey_node"),
    path("journeys/<int:journey_id>/test/", journey_views.journey_test, name="journey_test"),
    re_path(
        r"^journeys/(?P<journey_id>[0-9]+)/(?P<action>pause|resume|archive)/$",
        journey_views.journey_status,
        name="journey_status",
    ),
    path("tasks/", journey_views.my_tasks, name="my_tasks"),
    path("tasks/<int:task_id>/close/", journey_views.task_close, name="task_close"),
    path("messages/", connector_views.messages_index, name="messages"),
    path("reports/", views.reports, name="reports"),
    path("channels/", connector_views.channels, name="channels"),
    path("", include("connectors.urls")),
    path("account/", views.account, name="account"),
    path("settings/", views.settings_index, name="settings"),
    path("settings/users/", views.settings_users, name="settings_users"),
    path("settings/api-tokens/revoke/", views.settings_api_tokens_revoke, name="settings_api_tokens_revoke"),
    path("settings/users/new/", views.settings_user_create, name="settings_user_create"),
    path("settings/users/<int:user_id>/", views.settings_user, name="settings_user"),
    path(
        "settings/users/<int:user_id>/active/",
        views.settings_user_set_active,
        name="settings_user_set_active",
    ),
    path("settings/roles/", views.settings_roles, name="settings_roles"),
    path("settings/roles/new/", views.settings_role_create, name="settings_role_create"),
    path("settings/roles/<int:role_id>/", views.settings_role, name="settings_role"),
    path("settings/roles/<int:role_id>/delete/", views.settings_role_delete, name="settings_role_delete"),
    path("settings/teams/new/", views.settings_team_create, name="settings_team_create"),
    path("settings/sources/", source_views.sources, name="settings_sources"),
    path("settings/identity-rules/", source_views.identity_rules, name="settings_identity_rules"),
    path(
        "settings/sources/requests/<int:batch_id>/retry/",
        source_views.batch_retry,
        name="settings_batch_retry",
    ),
    path(
        "settings/sources/requests/<int:batch_id>/discard/",
        source_views.batch_discard,
        name="settings_batch_discard",
    ),
    path("settings/customer-roles/", source_views.customer_roles, name="settings_customer_roles"),
    path(
        "settings/sources/<int:source_id>/rotate/", source_views.source_rotate, name="settings_source_rotate"
    ),
    path(
        "settings/sources/<int:source_id>/toggle/", source_views.source_toggle, name="settings_source_toggle"
    ),
    path("settings/audit/", views.settings_audit, name="settings_audit"),
    path("settings/contact-policy/", journey_policy_views.contact_policy, name="settings_contact_policy"),
    path("api/", include("cdp.api.urls")),
    # Segment's tracking spec; also /v1/import, the name some clients use for batches.
    path("v1/identify", tracking_views.identify, name="track_identify"),
    path("v1/track", tracking_views.track, name="track_track"),
    path("v1/page", tracking_views.page, name="track_page"),
    path("v1/screen", tracking_views.screen, name="track_screen"),
    path("v1/group", tracking_views.group, name="track_group"),
    path("v1/alias", tracking_views.alias, name="track_alias"),
    path("v1/batch", tracking_views.batch, name="track_batch"),
    path("v1/import", tracking_views.batch, name="track_import"),
]

# Under /api/, a URL that names nothing and a request refused before any view answer in JSON, as the
# rest of the API.
handler404 = "cdp.api.views.not_found"
handler400 = "cdp.api.views.bad_request"
