"""The product's main navigation: one entry per section, shown only to roles that may open it."""

from dataclasses import dataclass

from django.urls import reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from cdp.access import user_can


@dataclass(frozen=True)
class Section:
    url_name: str
    label: Promise
    icon: str
    capability: str


SECTIONS = (
    Section("customers", _("Customers"), "users", "view_customers"),
    Section("segments", _("Segments"), "filter", "view_segments"),
    Section("tags", _("Tags"), "tag", "view_segments"),
    Section("lifecycle", _("Lifecycle"), "stages", "view_segments"),
    Section("journeys", _("Journeys"), "route", "view_journeys"),
    Section("my_tasks", _("My tasks"), "check", "work_tasks"),
    Section("messages", _("Messages"), "message", "view_messages"),
    Section("reports", _("Reports"), "chart", "view_reports"),
    Section("channels", _("Channels"), "plug", "manage_channels"),
    Section("settings", _("Settings"), "gear", "manage_users"),
)


def sections_for(user, current_path: str) -> list[dict]:
    entries = []
    for section in SECTIONS:
        if not user_can(user, section.capability):
            continue
        url = reverse(section.url_name)
        entries.append(
            {"url": url, "label": section.label, "icon": section.icon, "active": current_path.startswith(url)}
        )
    return entries
