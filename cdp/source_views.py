"""Settings → Data sources: the touch points that send events, with their write keys."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from cdp import services
from cdp.access import capability_required
from cdp.customers import source_list
from cdp.identity import IDENTITY_TYPES
from cdp.identity_rules import rules_list, rules_save
from cdp.ingest import MAX_ATTEMPTS, backlog_read, ingest_batch_discard, ingest_batch_retry
from cdp.models import CustomerRole, IngestBatch, Source
from cdp.roles import role_delete, role_save


@capability_required("manage_data")
def sources(request):
    form_errors = {}
    if request.method == "POST":
        try:
            source = services.source_create(
                name=request.POST.get("name", ""), kind=request.POST.get("kind", ""), actor=request.user
            )
        except ValidationError as error:
            form_errors = error.message_dict
        else:
            messages.success(
                request,
                _("The source “%(name)s” is ready; send events with its write key.") % {"name": source.name},
            )
            return redirect("settings_sources")
    context = {
        "tab": "sources",
        "sources": source_list(),
        "kinds": Source.Kind.choices,
        "form_errors": form_errors,
        "posted": request.POST,
        "endpoint": f"{settings.SITE_URL}/v1/batch",
        "backlog": backlog_read(),
        "max_attempts": MAX_ATTEMPTS,
    }
    return render(request, "settings/sources.html", context)


@capability_required("manage_data")
@require_POST
def source_rotate(request, source_id: int):
    source = services.source_rotate_key(source=get_object_or_404(Source, pk=source_id), actor=request.user)
    messages.success(
        request, _("“%(name)s” has a new write key; the old one stopped working.") % {"name": source.name}
    )
    return redirect("settings_sources")


@capability_required("manage_data")
@require_POST
def source_toggle(request, source_id: int):
    source = get_object_or_404(Source, pk=source_id)
    services.source_set_enabled(source=source, enabled=not source.enabled, actor=request.user)
    if source.enabled:
        messages.success(request, _("“%(name)s” accepts events again.") % {"name": source.name})
    else:
        messages.success(
            request, _("“%(name)s” is disabled: its events are refused with 403.") % {"name": source.name}
        )
    return redirect("settings_sources")


@capability_required("manage_data")
@require_POST
def batch_retry(request, batch_id: int):
    ingest_batch_retry(batch=get_object_or_404(IngestBatch, pk=batch_id), actor=request.user)
    messages.success(request, _("The request goes back to the workers; watch this page for the result."))
    return redirect("settings_sources")


@capability_required("manage_data")
@require_POST
def batch_discard(request, batch_id: int):
    batch = get_object_or_404(IngestBatch, pk=batch_id)
    ingest_batch_discard(batch=batch, actor=request.user)
    messages.success(
        request,
        _("The request and its %(count)s events were discarded; the audit log keeps the reason.")
        % {"count": batch.event_count},
    )
    return redirect("settings_sources")


@capability_required("manage_data")
def identity_rules(request):
    errors = {}
    if request.method == "POST":
        rows = {
            name: {
                field: request.POST.get(f"{name}.{field}", "")
                for field in ("priority", "max_per_customer", "blocked_values")
            }
            for name in IDENTITY_TYPES
        }
        try:
            rules_save(rows=rows, actor=request.user)
        except ValidationError as error:
            errors = error.message_dict
        else:
            messages.success(request, _("Identity rules saved; new events follow them within seconds."))
            return redirect("settings_identity_rules")
    return render(
        request, "settings/identity_rules.html", {"tab": "identity", "rules": rules_list(), "errors": errors}
    )


@capability_required("manage_data")
def customer_roles(request):
    errors, posted = {}, {}
    if request.method == "POST":
        posted = request.POST
        if request.POST.get("delete"):
            role_delete(role=get_object_or_404(CustomerRole, pk=request.POST["delete"]), actor=request.user)
            messages.success(request, _("Role removed; customers keep their role attribute."))
            return redirect("settings_customer_roles")
        try:
            role_save(
                key=request.POST.get("key", ""),
                label=request.POST.get("label", ""),
                key_metrics=request.POST.get("key_metrics", ""),
                actor=request.user,
            )
        except ValidationError as error:
            errors = error.message_dict
        else:
            messages.success(request, _("Role saved."))
            return redirect("settings_customer_roles")
    context = {
        "tab": "roles_customer",
        "roles": CustomerRole.objects.all(),
        "errors": errors,
        "posted": posted,
    }
    return render(request, "settings/customer_roles.html", context)
