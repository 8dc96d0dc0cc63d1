"""The contact policy settings page: per channel, caps per customer and quiet hours; and the journeys'
priorities."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from cdp.access import capability_required
from connectors.protocol import Channel
from journeys.models import ChannelPolicy, Journey
from journeys.policy import channel_policies, contact_policy_save


def _policy_rows(posted) -> list[dict]:
    rows = []
    for channel, policy in channel_policies().items():
        row = {
            "channel": channel,
            "label": Channel.LABELS.get(channel, channel),
            "per_day": policy.per_day,
            "per_week": policy.per_week,
            "quiet_start": policy.quiet_start.strftime("%H:%M") if policy.quiet_start else "",
            "quiet_end": policy.quiet_end.strftime("%H:%M") if policy.quiet_end else "",
            "quiet_action": policy.quiet_action,
        }
        if posted:
            row.update({field: posted.get(f"{channel}.{field}", "") for field in list(row)[2:]})
        rows.append(row)
    return rows


POLICY_FIELDS = ("per_day", "per_week", "quiet_start", "quiet_end", "quiet_action")


@capability_required("manage_journeys")
def contact_policy(request):
    """Per channel: caps per customer and quiet hours; and the journeys' priorities."""
    errors: dict[str, list[str]] = {}
    posted = request.POST if request.method == "POST" else None
    journeys_shown = Journey.objects.exclude(status=Journey.Status.ARCHIVED).order_by("-priority", "name")
    if posted is not None:
        channels = {
            channel: {field: posted.get(f"{channel}.{field}", "") for field in POLICY_FIELDS}
            for channel in channel_policies()
        }
        for fields in channels.values():
            fields["quiet_action"] = fields["quiet_action"] or ChannelPolicy.QuietAction.HOLD
        priorities = {}
        for journey in journeys_shown:
            raw = posted.get(f"priority.{journey.pk}", str(journey.priority)).strip()
            priorities[journey.pk] = int(raw) if raw.lstrip("-").isdigit() else raw
        try:
            contact_policy_save(channels=channels, priorities=priorities, actor=request.user)
        except ValidationError as error:
            errors = error.message_dict
        else:
            messages.success(
                request, _("Contact policy saved; journey sends follow it from their next step.")
            )
            return redirect("settings_contact_policy")
    return render(
        request,
        "settings/contact_policy.html",
        {
            "tab": "contact_policy",
            "rows": _policy_rows(posted),
            "actions": ChannelPolicy.QuietAction.choices,
            "journeys": [
                {
                    "pk": journey.pk,
                    "name": journey.name,
                    "status": journey.get_status_display(),
                    "priority": posted.get(f"priority.{journey.pk}", journey.priority)
                    if posted
                    else journey.priority,
                }
                for journey in journeys_shown
            ],
            "errors": errors,
        },
    )
