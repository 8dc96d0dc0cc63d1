"""The segment pages marketers use: the list, the rule builder with its live count, a segment's page
(its rule in words, size history, latest changes, members, CSV export) and static segments made from
an uploaded list."""

from __future__ import annotations

import json
from dataclasses import asdict

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from cdp.access import capability_required, user_can
from cdp.customers import primary_phones
from cdp.models import CustomerRole, CustomerScope
from cdp.selectors import customers_visible_to, user_customer_scope
from cdp.services import audit_record
from segments import lists
from segments.builder import builder_page_config, rule_outline
from segments.models import LifecycleStage, Segment, Tag
from segments.rules import RuleError
from segments.services import rule_validate, segment_delete, segment_refresh, segment_save, segment_users
from segments.uploads import static_members_upload, static_segment_create

UPLOAD_REPORT = "segment-upload-report-{}"


# --------------------------------------------------------------------------------------------------
# The list, and new static segments


def _list_page(request, *, errors=None, posted=None, status=200):
    context = {
        "segments": lists.segment_list(),
        "can_manage": user_can(request.user, "manage_segments"),
        "errors": errors or {},
        "posted": posted or {},
    }
    return render(request, "segments/index.html", context, status=status)


@capability_required("view_segments")
def segments(request):
    return _list_page(request)


@capability_required("manage_segments")
@require_POST
def segment_static_create(request):
    try:
        segment, report = static_segment_create(
            key=request.POST.get("key", ""),
            name=request.POST.get("name", ""),
            description=request.POST.get("description", ""),
            upload=request.FILES.get("file"),
            actor=request.user,
        )
    except ValidationError as error:
        return _list_page(request, errors=error.message_dict, posted=request.POST, status=400)
    request.session[UPLOAD_REPORT.format(segment.pk)] = asdict(report)
    messages.success(request, _("Static segment “%(name)s” created.") % {"name": segment.name})
    return redirect("segment", segment_id=segment.pk)


# --------------------------------------------------------------------------------------------------
# The rule builder


def _builder_page(request, *, segment, values, errors=None, problems=None, status=200):
    context = {
        "segment": segment,
        "values": values,
        "errors": errors or {},
        "config": builder_page_config(problems),
    }
    return render(request, "segments/builder.html", context, status=status)


def _builder(request, segment: Segment | None):
    if segment is None:
        values = {"key": "", "name": "", "description": "", "rule": json.dumps({"and": []})}
    else:
        values = {
            "key": segment.key,
            "name": segment.name,
            "description": segment.description,
            "rule": json.dumps(segment.rule, ensure_ascii=False),
        }
    if request.method != "POST":
        return _builder_page(request, segment=segment, values=values)

    values = {
        "key": segment.key if segment else request.POST.get("key", "").strip(),
        "name": request.POST.get("name", ""),
        "description": request.POST.get("description", ""),
        "rule": request.POST.get("rule", ""),
    }
    errors: dict[str, list] = {}
    problems: list[dict] = []
    try:
        rule_data = json.loads(values["rule"])
    except ValueError:
        rule_data, problems = (
            None,
            [{"path": "$", "message": _("The rule could not be read; build it again.")}],
        )
    if segment is None and Segment.objects.filter(key=values["key"]).exists():
        errors["key"] = [_("A segment with this key exists already; choose another key.")]
    if not errors and not problems:
        try:
            saved = segment_save(
                key=values["key"],
                name=values["name"],
                description=values["description"].strip(),
                rule_data=rule_data,
                actor=request.user,
            )
        except RuleError as error:
            problems = error.problems
        except ValidationError as error:
            errors = error.message_dict
        else:
            messages.success(
                request,
                _("Segment “%(name)s” saved: %(count)s customers.")
                % {"name": saved.name, "count": saved.member_count},
            )
            return redirect("segment", segment_id=saved.pk)
    if errors and not problems and rule_data is not None:
        try:  # every mistake at once: the rule's too, not only the key's or the name's
            rule_validate(rule_data)
        except RuleError as error:
            problems = error.problems
    return _builder_page(
        request, segment=segment, values=values, errors=errors, problems=problems, status=400
    )


@capability_required("manage_segments")
def segment_new(request):
    return _builder(request, None)


@capability_required("manage_segments")
def segment_edit(request, segment_id: int):
    segment = get_object_or_404(Segment, pk=segment_id)
    if segment.kind == Segment.Kind.STATIC:
        messages.info(request, _("A static segment has no rule: upload a new list instead."))
        return redirect("segment", segment_id=segment.pk)
    return _builder(request, segment)


# --------------------------------------------------------------------------------------------------
# A segment's page


def _names() -> dict:
    return {
        "tag": dict(Tag.objects.values_list("key", "name")),
        "segment": dict(Segment.objects.values_list("key", "name")),
        "role": dict(CustomerRole.objects.values_list("key", "label")),
        "stage": dict(LifecycleStage.objects.values_list("key", "name")),
    }


def _member_rows(request, segment: Segment) -> dict:
    """The members this reader sees (their roles' customer scope), phones masked unless they may
    see them; with how many they see when that is not everyone."""
    visible = customers_visible_to(request.user, via="customer")
    page = lists.member_page(segment=segment, number=request.GET.get("page"), visible=visible)
    phones = primary_phones(
        customer_ids=[member.customer_id for member in page], show_pii=user_can(request.user, "view_pii")
    )
    scoped = user_customer_scope(request.user) != CustomerScope.ALL
    return {
        "segment": segment,
        "page": page,
        "members": [(member, phones.get(member.customer_id, "")) for member in page],
        "visible_count": segment.members.filter(visible).count() if scoped else None,
    }


def _detail_page(request, segment: Segment, *, upload_errors=None, status=200):
    report = request.session.pop(UPLOAD_REPORT.format(segment.pk), None)
    context = {
        "segment": segment,
        "can_manage": user_can(request.user, "manage_segments"),
        "users": segment_users(segment),
        "outline": rule_outline(segment.rule, _names()) if segment.rule else None,
        "history": {"points": lists.size_history(segment=segment)},
        "changes": lists.recent_changes(segment=segment, visible=customers_visible_to(request.user)),
        "report": report,
        "upload_errors": upload_errors or {},
        **_member_rows(request, segment),
    }
    return render(request, "segments/detail.html", context, status=status)


@capability_required("view_segments")
def segment_detail(request, segment_id: int):
    return _detail_page(request, get_object_or_404(Segment, pk=segment_id))


@capability_required("view_segments")
def segment_members(request, segment_id: int):
    segment = get_object_or_404(Segment, pk=segment_id)
    return render(request, "segments/_member_rows.html", _member_rows(request, segment))


@capability_required("manage_segments")
@require_POST
def segment_refresh_now(request, segment_id: int):
    segment = get_object_or_404(Segment, pk=segment_id)
    if segment.kind == Segment.Kind.STATIC or not segment.rule:
        messages.info(request, _("A static segment changes only when a new list is uploaded."))
        return redirect("segment", segment_id=segment.pk)
    change = segment_refresh(segment=segment)
    messages.success(
        request,
        _("Refreshed: %(entered)s entered, %(exited)s left.")
        % {"entered": change.entered, "exited": change.exited},
    )
    return redirect("segment", segment_id=segment.pk)


@capability_required("manage_segments")
@require_POST
def segment_remove(request, segment_id: int):
    segment = get_object_or_404(Segment, pk=segment_id)
    try:
        segment_delete(segment=segment, actor=request.user)
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
        return redirect("segment", segment_id=segment.pk)
    messages.success(request, _("Segment “%(name)s” deleted.") % {"name": segment.name})
    return redirect("segments")


@capability_required("manage_segments")
@require_POST
def segment_upload(request, segment_id: int):
    segment = get_object_or_404(Segment, pk=segment_id)
    try:
        report = static_members_upload(
            segment=segment,
            upload=request.FILES.get("file"),
            actor=request.user,
            replace=request.POST.get("mode", "replace") != "add",
        )
    except ValidationError as error:
        return _detail_page(request, segment, upload_errors=error.message_dict, status=400)
    request.session[UPLOAD_REPORT.format(segment.pk)] = asdict(report)
    messages.success(
        request,
        _("List uploaded: %(entered)s entered, %(exited)s left.")
        % {"entered": report.entered, "exited": report.exited},
    )
    return redirect("segment", segment_id=segment.pk)


async def _in_thread(lines):
    """Under ASGI a synchronous iterator would be read whole before the first byte is sent; this
    hands the chunks on one by one, each read in the request's thread."""
    done = object()
    while True:
        chunk = await sync_to_async(next, thread_sensitive=True)(lines, done)
        if chunk is done:
            return
        yield chunk


@capability_required("view_segments")
def segment_export(request, segment_id: int):
    segment = get_object_or_404(Segment, pk=segment_id)
    show_pii = user_can(request.user, "view_pii")
    visible = customers_visible_to(request.user, via="customer")
    audit_record(
        actor=request.user,
        action="segment.export",
        target=segment,
        details={"members": segment.members.filter(visible).count(), "full_contacts": show_pii},
    )
    lines = lists.members_csv(segment=segment, show_pii=show_pii, visible=visible)
    response = StreamingHttpResponse(
        _in_thread(lines) if isinstance(request, ASGIRequest) else lines,
        content_type="text/csv; charset=utf-8",
    )
    filename = f"segment-{segment.key}-{timezone.localdate():%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
