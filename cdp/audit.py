"""What audit entries say to people: one translated sentence per action."""

from django.utils.translation import gettext as _

from cdp.access import ROLE_LABELS
from cdp.models import AuditEntry, CustomerScope


def _role(name: str | None) -> str:
    return str(ROLE_LABELS.get(name, name or "—"))


def _scope(value: str | None) -> str:
    return str(dict(CustomerScope.choices).get(value, value or "—")).lower()


def audit_summary(entry: AuditEntry) -> str:
    details = entry.details or {}
    if entry.action == "user.create":
        return _("added the user as %(role)s") % {"role": _role(details.get("role"))}
    if entry.action == "user.role_change":
        return _("changed the role from %(old)s to %(new)s") % {
            "old": _role(details.get("from")),
            "new": _role(details.get("to")),
        }
    if entry.action == "user.team_change":
        return _("changed the team from %(old)s to %(new)s") % {
            "old": details.get("from") or "—",
            "new": details.get("to") or "—",
        }
    if entry.action == "role.create":
        return _("created the role (from %(template)s), seeing %(scope)s") % {
            "template": _role(details.get("template")),
            "scope": _scope(details.get("scope")),
        }
    if entry.action == "role.rename":
        return _("renamed the role from “%(old)s” to “%(new)s”") % {
            "old": details.get("from"),
            "new": details.get("to"),
        }
    if entry.action == "role.capabilities":
        return _("changed the capabilities: added %(added)s; removed %(removed)s") % {
            "added": ", ".join(details.get("added") or []) or "—",
            "removed": ", ".join(details.get("removed") or []) or "—",
        }
    if entry.action == "role.scope":
        return _("changed which customers the role sees from %(old)s to %(new)s") % {
            "old": _scope(details.get("from")),
            "new": _scope(details.get("to")),
        }
    if entry.action == "role.delete":
        return _("deleted the role; %(count)s users moved to %(role)s") % {
            "count": details.get("moved", 0),
            "role": _role(details.get("to")),
        }
    if entry.action == "team.create":
        return _("created the team")
    if entry.action == "user.activate":
        return _("reactivated the user")
    if entry.action == "user.deactivate":
        return _("deactivated the user")
    if entry.action == "user.api_token":
        return _("created a new API token")
    if entry.action == "user.api_token_revoke":
        return _("revoked the API token")
    if entry.action == "source.create":
        return _("created the data source")
    if entry.action == "source.rotate_key":
        return _("rotated the write key")
    if entry.action == "source.enable":
        return _("enabled the data source")
    if entry.action == "source.disable":
        return _("disabled the data source")
    if entry.action == "customer.merge":
        return _("merged customer #%(other)s into this one") % {"other": details.get("merged")}
    if entry.action == "customer.unmerge":
        return _("undid the merge of customer #%(other)s") % {"other": details.get("restored")}
    if entry.action == "customer.review":
        if details.get("merged"):
            return _("merged customer #%(other)s after review") % {"other": details.get("other")}
        return _("kept customer #%(other)s apart after review") % {"other": details.get("other")}
    if entry.action == "customer_role.save":
        return _("saved the customer role")
    if entry.action == "customer_role.delete":
        return _("removed the customer role")
    if entry.action == "identity.rules":
        return _("changed the identity rules")
    if entry.action == "customer.owner":
        return _("set the owner to %(owner)s") % {"owner": details.get("owner") or "—"}
    return entry.action
