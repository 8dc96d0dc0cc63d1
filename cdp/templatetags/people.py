from django import template

from cdp.access import ROLE_LABELS
from cdp.audit import audit_summary as summarise_audit_entry
from cdp.users import display_name as user_display_name

register = template.Library()


@register.filter
def display_name(user) -> str:
    return user_display_name(user) if user else ""


@register.filter
def role_label(role: str | None) -> str:
    return ROLE_LABELS.get(role, role or "")


@register.filter
def audit_summary(entry) -> str:
    return summarise_audit_entry(entry)
