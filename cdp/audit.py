"""What audit entries say to people: one translated sentence per action."""

from django.utils.translation import gettext as _

from cdp.access import ROLE_LABELS
from cdp.models import AuditEntry


def _role(name: str | None) -> str:
    return str(ROLE_LABELS.get(name, name or "—"))


def audit_summary(entry: AuditEntry) -> str:
    details = entry.details or {}
    if entry.action == "user.create":
        return _("added the user as %(role)s") % {"role": _role(details.get("role"))}
    if entry.action == "user.role_change":
        return _("changed the role from %(old)s to %(new)s") % {
            "old": _role(details.get("from")),
            "new": _role(details.get("to")),
        }
    if entry.action == "user.activate":
        return _("reactivated the user")
    if entry.action == "user.deactivate":
        return _("deactivated the user")
    return entry.action
