"""Who may do what: capabilities, the roles that bundle them, and the one check every view uses.

A capability is a Django permission on ``cdp.Capability``. Roles are Django groups. Pages declare
what they need with ``@capability_required(...)``; API views set ``required_capability``, read by
``cdp.api.permissions.HasCapability``; both end in ``user_can``. A view that declares nothing is
refused, so a forgotten check fails closed.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext_lazy as _

CAPABILITIES: dict[str, str] = {
    "view_customers": _("View customers and their profiles"),
    "view_pii": _("See full phone numbers and ID numbers"),
    "edit_customers": _("Edit customers, notes and static tags"),
    "manage_data": _("Manage sources, imports and identity rules"),
    "view_segments": _("View segments, tags and lifecycle stages"),
    "manage_segments": _("Create and change segments, tags, stages and scores"),
    "view_journeys": _("View journeys and their results"),
    "manage_journeys": _("Draw, publish and pause journeys"),
    "view_messages": _("View messages and delivery receipts"),
    "send_messages": _("Send messages to a customer by hand"),
    "view_reports": _("View reports"),
    "manage_channels": _("Manage channel accounts and credentials"),
    "manage_users": _("Manage users, roles and settings"),
    "work_tasks": _("Work on staff tasks"),
}

ROLE_ADMIN, ROLE_MARKETER, ROLE_SALES, ROLE_ANALYST = "Admin", "Marketer", "Sales", "Analyst"
ROLE_LABELS = {
    ROLE_ADMIN: _("Admin"),
    ROLE_MARKETER: _("Marketer"),
    ROLE_SALES: _("Sales"),
    ROLE_ANALYST: _("Analyst"),
}
ROLE_DESCRIPTIONS = {
    ROLE_ADMIN: _("Everything, including users, roles and channel credentials."),
    ROLE_MARKETER: _("Segments, tags, journeys, messages and reports."),
    ROLE_SALES: _("Customer profiles with full contact details, messages and tasks."),
    ROLE_ANALYST: _("Reads customers, segments, journeys and reports; changes nothing."),
}
ROLE_CAPABILITIES: dict[str, frozenset[str]] = {
    ROLE_ADMIN: frozenset(CAPABILITIES),
    ROLE_MARKETER: frozenset(
        {
            "view_customers",
            "edit_customers",
            "view_segments",
            "manage_segments",
            "view_journeys",
            "manage_journeys",
            "view_messages",
            "send_messages",
            "view_reports",
        }
    ),
    ROLE_SALES: frozenset(
        {
            "view_customers",
            "view_pii",
            "edit_customers",
            "view_segments",
            "view_journeys",
            "view_messages",
            "send_messages",
            "work_tasks",
        }
    ),
    ROLE_ANALYST: frozenset(
        {"view_customers", "view_segments", "view_journeys", "view_messages", "view_reports"}
    ),
}

# Declares a view open to every signed-in user (the home page, their own account).
SIGNED_IN = "signed_in"


def user_can(user, capability: str) -> bool:
    if not (user and user.is_authenticated and user.is_active):
        return False
    if capability == SIGNED_IN:
        return True
    if capability not in CAPABILITIES:
        raise ValueError(f"Unknown capability {capability!r}")
    return user.has_perm(f"cdp.{capability}")


def capability_required(capability: str) -> Callable:
    """Marks a page view with what it needs; ``AccessMiddleware`` enforces it."""
    if capability != SIGNED_IN and capability not in CAPABILITIES:
        raise ValueError(f"Unknown capability {capability!r}")

    def mark(view: Callable) -> Callable:
        view.required_capability = capability
        return view

    return mark


def declared_capability(view_func: Callable) -> str | None:
    capability = getattr(view_func, "required_capability", None)
    view_class = getattr(view_func, "cls", None) or getattr(view_func, "view_class", None)
    if capability is None and view_class is not None:
        capability = getattr(view_class, "required_capability", None)
    return capability


def api_checks_capability(api_view) -> bool:
    from cdp.api.permissions import HasCapability

    return any(
        isinstance(permission, type) and issubclass(permission, HasCapability)
        for permission in getattr(api_view, "permission_classes", ())
    )


def is_public(view_func: Callable) -> bool:
    return getattr(view_func, "login_required", True) is False


class AccessMiddleware(LoginRequiredMiddleware):
    """Sends anonymous visitors to the login page and refuses pages the user's roles do not allow.

    A view must be public (``login_not_required``) or declare a capability; one that declares
    nothing is refused. API views must declare one too and keep ``HasCapability`` among their
    permission classes; DRF then authenticates sessions and tokens and asks it.
    """

    def process_view(self, request, view_func, view_args, view_kwargs):
        api_view = getattr(view_func, "cls", None)
        if api_view is not None:
            # DRF marks its views login_not_required; they must still declare and check a capability.
            if declared_capability(view_func) is None or not api_checks_capability(api_view):
                raise PermissionDenied("This API view does not check capabilities.")
            return None
        if is_public(view_func):
            return None
        capability = declared_capability(view_func)
        if capability is None:
            raise PermissionDenied("This view declares no capability.")
        if not request.user.is_authenticated:
            return self.handle_no_permission(request, view_func)
        if not user_can(request.user, capability):
            raise PermissionDenied
        return None


def sync_role_groups(group_model, permission_model, content_type_model) -> None:
    """Creates the capability permissions and whichever built-in role groups are missing, each with
    the capabilities the code grants it. Roles that exist are left as they are: admins edit them.

    Takes the model classes so a data migration can pass its historical models.
    """
    content_type, _created = content_type_model.objects.get_or_create(app_label="cdp", model="capability")
    permissions = {}
    for codename, label in CAPABILITIES.items():
        permission, _created = permission_model.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": str(label)[:255]}
        )
        permissions[codename] = permission
    for role, capabilities in ROLE_CAPABILITIES.items():
        group, created = group_model.objects.get_or_create(name=role)
        if created:
            group.permissions.set([permissions[codename] for codename in sorted(capabilities)])
