from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import Group
from django.contrib.auth.views import PasswordResetConfirmView
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from cdp import selectors, services, staff_roles
from cdp.access import CAPABILITIES, SIGNED_IN, capability_required, user_can
from cdp.forms import RoleCreateForm, RoleRenameForm, TeamCreateForm, UserCreateForm, UserForm
from cdp.models import ApiToken, CustomerScope, Team
from cdp.navigation import sections_for
from cdp.users import display_name

User = get_user_model()


@capability_required(SIGNED_IN)
def home(request):
    return render(request, "cdp/home.html", {"sections": sections_for(request.user, "")})


@login_not_required
@never_cache
def healthz(request):
    report = selectors.health_report(with_details=user_can(request.user, "manage_users"))
    return JsonResponse(report, status=200 if report["ok"] else 503)


@capability_required("view_reports")
def reports(request):
    return render(request, "cdp/reports.html")


@capability_required("manage_users")
def settings_index(request):
    return redirect("settings_users")


def _apply_form_errors(form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, field_errors in error.error_dict.items():
            for field_error in field_errors:
                form.add_error(field if field in form.fields else None, field_error)
    else:
        for message in error.messages:
            form.add_error(None, message)


@capability_required("manage_users")
@vary_on_headers("HX-Request")
def settings_users(request):
    query, role, status = (request.GET.get(key, "").strip() for key in ("q", "role", "status"))
    users = selectors.user_list(query=query, role=role, status=status)
    context = {
        "users": [(user, selectors.user_role(user)) for user in users],
        "filters": {"q": query, "role": role, "status": status},
        "role_labels": dict(staff_roles.role_choices()),
        "filtered": bool(query or role or status),
    }
    # Only the rows for htmx's live filtering; a history restore needs the whole page.
    partial = request.htmx and not request.htmx.history_restore_request
    template = "settings/_user_rows.html" if partial else "settings/users.html"
    return render(request, template, context)


@capability_required("manage_users")
def settings_user_create(request):
    form = UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_create(actor=request.user, **form.cleaned_data)
        except ValidationError as error:
            _apply_form_errors(form, error)
        else:
            messages.success(request, _("%(name)s was added.") % {"name": display_name(user)})
            return redirect("settings_user", user_id=user.pk)
    return render(request, "settings/user_form.html", {"form": form, "creating": True})


@capability_required("manage_users")
def settings_user(request, user_id: int):
    user = get_object_or_404(User, pk=user_id)
    role = selectors.user_role(user)
    team = staff_roles.user_team(user)
    initial = {
        "full_name": user.get_full_name(),
        "email": user.email,
        "role": role,
        "team": team.pk if team else "",
    }
    form = UserForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.user_update(actor=request.user, user=user, **form.cleaned_data)
        except ValidationError as error:
            _apply_form_errors(form, error)
        else:
            messages.success(request, _("Changes saved."))
            return redirect("settings_user", user_id=user.pk)
    invitation = None
    if user.is_active and not user.has_usable_password():
        invitation = services.invitation_url(user=user)
    context = {
        "form": form,
        "managed_user": user,
        "role": role,
        "invitation": invitation,
        "audit_entries": selectors.audit_list_for(target=user)[:20],
    }
    return render(request, "settings/user_form.html", context)


@capability_required("manage_users")
@require_POST
def settings_user_set_active(request, user_id: int):
    user = get_object_or_404(User, pk=user_id)
    active = request.POST.get("active") == "1"
    try:
        services.user_set_active(actor=request.user, user=user, active=active)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        done = _("%(name)s can log in again.") if active else _("%(name)s can no longer log in.")
        messages.success(request, done % {"name": display_name(user)})
    return redirect("settings_user", user_id=user.pk)


# The team form sits on the roles page beside the new-role form: its fields need ids of their own.
TEAM_FIELD_IDS = "team_%s"


def _roles_page(request, *, create_form=None, team_form=None, status=200):
    roles = staff_roles.roles_overview()
    matrix = [
        (codename, label, [(row, codename in row.capabilities) for row in roles])
        for codename, label in CAPABILITIES.items()
    ]
    context = {
        "roles": roles,
        "matrix": matrix,
        "scopes": CustomerScope.choices,
        "create_form": create_form or RoleCreateForm(),
        "team_form": team_form or TeamCreateForm(auto_id=TEAM_FIELD_IDS),
        "teams": Team.objects.annotate(size=Count("members")),
    }
    return render(request, "settings/roles.html", context, status=status)


@capability_required("manage_users")
def settings_roles(request):
    """The roles matrix: every role's capabilities and customer scope, ticked and saved at once."""
    if request.method != "POST":
        return _roles_page(request)
    try:
        with transaction.atomic():
            # Only the roles the page showed: one made meanwhile keeps its capabilities.
            shown = [int(pk) for pk in request.POST.getlist("roles") if pk.isdigit()]
            for group in Group.objects.filter(pk__in=shown):
                staff_roles.role_update(
                    actor=request.user,
                    group=group,
                    capabilities=request.POST.getlist(f"capabilities-{group.pk}"),
                    scope=request.POST.get(f"scope-{group.pk}", staff_roles.role_scope(group)),
                )
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
        return _roles_page(request, status=400)
    messages.success(request, _("Roles saved."))
    return redirect("settings_roles")


@capability_required("manage_users")
@require_POST
def settings_role_create(request):
    form = RoleCreateForm(request.POST)
    if form.is_valid():
        try:
            group = staff_roles.role_create(actor=request.user, **form.cleaned_data)
        except ValidationError as error:
            _apply_form_errors(form, error)
        else:
            messages.success(request, _("Role “%(name)s” created.") % {"name": group.name})
            return redirect("settings_role", role_id=group.pk)
    return _roles_page(request, create_form=form, status=400)


@capability_required("manage_users")
def settings_role(request, role_id: int):
    """One role: rename it, or delete it (its users moved to another role)."""
    group = get_object_or_404(Group, pk=role_id)
    builtin = staff_roles.role_is_builtin(group)
    form = RoleRenameForm(request.POST or None, initial={"name": group.name})
    if request.method == "POST" and not builtin and form.is_valid():
        try:
            staff_roles.role_update(actor=request.user, group=group, name=form.cleaned_data["name"])
        except ValidationError as error:
            _apply_form_errors(form, error)
        else:
            messages.success(request, _("Role renamed."))
            return redirect("settings_role", role_id=group.pk)
    context = {
        "group": group,
        "label": staff_roles.role_label(group.name),
        "builtin": builtin,
        "form": form,
        "members": User.objects.filter(groups=group).order_by("username"),
        "other_roles": [(name, label) for name, label in staff_roles.role_choices() if name != group.name],
        "audit_entries": selectors.audit_list_for(target=group)[:20],
    }
    return render(request, "settings/role.html", context, status=400 if form.errors else 200)


@capability_required("manage_users")
@require_POST
def settings_role_delete(request, role_id: int):
    group = get_object_or_404(Group, pk=role_id)
    move_to = Group.objects.filter(name=request.POST.get("move_to", "")).first()
    try:
        moved = staff_roles.role_delete(actor=request.user, group=group, move_to=move_to)
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
        return redirect("settings_role", role_id=role_id)
    messages.success(
        request,
        ngettext(
            "Role “%(name)s” deleted; %(count)s user now holds %(role)s.",
            "Role “%(name)s” deleted; %(count)s users now hold %(role)s.",
            moved,
        )
        % {
            "name": group.name,
            "count": moved,
            "role": staff_roles.role_label(move_to.name) if move_to else "—",
        },
    )
    return redirect("settings_roles")


@capability_required("manage_users")
@require_POST
def settings_team_create(request):
    form = TeamCreateForm(request.POST, auto_id=TEAM_FIELD_IDS)
    if form.is_valid():
        try:
            team = staff_roles.team_create(actor=request.user, name=form.cleaned_data["name"])
        except ValidationError as error:
            _apply_form_errors(form, error)
        else:
            messages.success(request, _("Team “%(name)s” created.") % {"name": team.name})
            return redirect(f"{reverse('settings_roles')}#teams")
    return _roles_page(request, team_form=form, status=400)


@capability_required("manage_users")
def settings_audit(request):
    return render(request, "settings/audit.html", {"entries": selectors.audit_recent(limit=200)})


@capability_required(SIGNED_IN)
@never_cache
def account(request):
    """The signed-in user's own page: role, and the API token back-office systems use. A new token's
    key is on the answer to the request that made it, and never again."""
    issued = None
    if request.method == "POST":
        if request.POST.get("action") == "revoke":
            services.api_token_revoke(user=request.user)
            messages.success(request, _("Your API token is revoked."))
            return redirect("account")
        lifetime = request.POST.get("expires_in_days", "90")
        try:
            issued = services.api_token_rotate(
                user=request.user, expires_in_days=int(lifetime) if lifetime.isdigit() else None
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
            return redirect("account")
        messages.success(request, _("Your new API token is ready; the previous one no longer works."))
    token = ApiToken.objects.filter(user=request.user).first()
    return render(
        request,
        "cdp/account.html",
        {
            "token": token,
            "issued_key": issued.key if issued else "",
            "lifetimes": services.API_TOKEN_LIFETIMES,
            "site_url": settings.SITE_URL,
        },
    )


@capability_required("manage_users")
@require_POST
def settings_api_tokens_revoke(request):
    count = services.api_tokens_revoke_all(actor=request.user)
    messages.success(
        request, _("%(count)s API tokens were revoked; their owners make new ones.") % {"count": count}
    )
    return redirect("settings_users")


class AcceptInvitationView(PasswordResetConfirmView):
    """An invited user opens the link from their admin and chooses a password."""

    template_name = "registration/accept_invitation.html"
    success_url = reverse_lazy("login")
    title = gettext_lazy("Choose your password")

    def form_valid(self, form):
        response = super().form_valid(form)
        messages.success(self.request, _("Your password is set. You can log in now."))
        return response
