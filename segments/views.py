from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from cdp.access import capability_required, user_can
from cdp.customers import customer_resolve
from cdp.selectors import customer_visible, customers_visible_among
from segments.builder import rule_form_context
from segments.forms import DynamicTagForm
from segments.models import Segment, Tag, TagGroup
from segments.rules import RuleError
from segments.tags import (
    SEGMENT_TAGGING_REFUSED,
    customers_tag,
    customers_untag,
    segment_members_tag,
    tag_change,
    tag_delete,
    tag_group_save,
    tag_save,
    tag_users,
    tags_merge,
    tags_overview,
)
from segments.uploads import upload_match, upload_text


def _tags_page(request, *, errors=None, posted=None, status=200):
    context = {
        "overview": tags_overview(),
        "groups": TagGroup.objects.all(),
        "can_manage": user_can(request.user, "manage_segments"),
        "errors": errors or {},
        "posted": posted or {},
    }
    return render(request, "segments/tags.html", context, status=status)


@capability_required("view_segments")
def tags(request):
    return _tags_page(request)


@capability_required("manage_segments")
@require_POST
def tag_create(request):
    """Adds a tag group (``form=group``) or a tag."""
    try:
        if request.POST.get("form") == "group":
            roles = request.POST.get("roles", "").replace(",", " ").split()
            group = tag_group_save(
                name=request.POST.get("name", ""),
                color=request.POST.get("color", ""),
                roles=roles,
                actor=request.user,
            )
            messages.success(request, _("Group “%(name)s” added.") % {"name": group.name})
        else:
            group_id = request.POST.get("group") or None
            tag = tag_save(
                key=request.POST.get("key", ""),
                name=request.POST.get("name", ""),
                group=get_object_or_404(TagGroup, pk=group_id) if group_id else None,
                color=request.POST.get("color", ""),
                actor=request.user,
            )
            messages.success(request, _("Tag “%(name)s” added.") % {"name": tag.name})
    except ValidationError as error:
        return _tags_page(request, errors=error.message_dict, posted=request.POST, status=400)
    return redirect("tags")


def _tag_page(request, tag: Tag, *, errors=None, posted=None, report=None, status=200):
    holders = tag.holders.count()
    context = {
        "tag": tag,
        "holders": holders,
        "users": tag_users(tag),
        "groups": TagGroup.objects.all(),
        "segments": Segment.objects.order_by("name"),
        "other_tags": Tag.objects.filter(kind=Tag.Kind.STATIC).exclude(pk=tag.pk).order_by("name"),
        "can_manage": user_can(request.user, "manage_segments"),
        "can_tag": user_can(request.user, "edit_customers") and tag.kind == Tag.Kind.STATIC,
        "errors": errors or {},
        "posted": posted or {},
        "report": report,
    }
    return render(request, "segments/tag.html", context, status=status)


@capability_required("view_segments")
def tag_detail(request, tag_id: int):
    return _tag_page(request, get_object_or_404(Tag, pk=tag_id))


def _dynamic_tag_form(request, tag: Tag | None):
    """A dynamic tag's name, key, group, colour and rule, the rule edited in the rule builder."""
    initial = (
        {"name": tag.name, "key": tag.key, "group": tag.group, "color": tag.display_color, "rule": tag.rule}
        if tag
        else {"color": "#7c3aed"}
    )
    form = DynamicTagForm(request.POST or None, initial=initial)
    problems: list[dict] = []
    if request.method == "POST" and form.is_valid():
        values = form.cleaned_data
        try:
            if tag is None:
                saved = tag_save(
                    key=values["key"],
                    name=values["name"],
                    group=values["group"],
                    color=values["color"],
                    rule_data=values["rule"],
                    actor=request.user,
                )
            else:
                saved = tag_change(
                    tag=tag,
                    name=values["name"],
                    color=values["color"],
                    group=values["group"],
                    rule_data=values["rule"],
                    actor=request.user,
                )
        except RuleError as error:
            problems = error.problems
            form.add_error(None, _("Fix the marked conditions of the rule."))
        except ValidationError as error:
            for field, field_errors in error.message_dict.items():
                for message in field_errors:
                    form.add_error(field if field in form.fields else None, message)
        else:
            count = saved.holders.count()
            messages.success(
                request,
                _("“%(name)s” saved: %(count)s customers hold it now.")
                % {"name": saved.name, "count": count},
            )
            return redirect("tag", tag_id=saved.pk)
    context = {
        "form": form,
        **rule_form_context(
            request,
            stored_rule=tag.rule if tag else None,
            heading=tag.name if tag else _("New dynamic tag"),
            back_url=reverse("tag", args=[tag.pk]) if tag else reverse("tags"),
            back_label=tag.name if tag else _("Tags"),
            rule_title=_("Who holds it"),
            rule_help=_(
                "Customers get the tag when they come to match the rule and lose it when they no longer do."
            ),
            submit_label=_("Save tag"),
            problems=problems,
            fixed_key=tag.key if tag else "",
        ),
    }
    return render(request, "segments/rule_form.html", context, status=400 if form.errors else 200)


@capability_required("manage_segments")
def tag_dynamic_new(request):
    return _dynamic_tag_form(request, None)


@capability_required("manage_segments")
def tag_rule_edit(request, tag_id: int):
    return _dynamic_tag_form(request, get_object_or_404(Tag, pk=tag_id, kind=Tag.Kind.DYNAMIC))


@capability_required("manage_segments")
@require_POST
def tag_edit(request, tag_id: int):
    """Renames, recolours or regroups a tag (a dynamic tag's rule is edited in the rule builder)."""
    tag = get_object_or_404(Tag, pk=tag_id)
    group_id = request.POST.get("group") or None
    try:
        tag_change(
            tag=tag,
            name=request.POST.get("name", ""),
            color=request.POST.get("color", ""),
            group=get_object_or_404(TagGroup, pk=group_id) if group_id else None,
            actor=request.user,
        )
    except ValidationError as error:
        return _tag_page(request, tag, errors=error.message_dict, posted=request.POST, status=400)
    messages.success(request, _("Changes saved."))
    return redirect("tag", tag_id=tag.pk)


@capability_required("edit_customers")
@require_POST
def tag_bulk(request, tag_id: int):
    """Tags (or untags) every member of a segment, or the customers of an uploaded list."""
    tag = get_object_or_404(Tag, pk=tag_id, kind=Tag.Kind.STATIC)
    remove = request.POST.get("action") == "remove"
    report = None
    try:
        if request.POST.get("segment"):
            if not user_can(request.user, "manage_segments"):
                raise PermissionDenied(SEGMENT_TAGGING_REFUSED)
            segment_id = request.POST["segment"]
            segment = get_object_or_404(Segment, pk=int(segment_id) if segment_id.isdigit() else 0)
            changed = segment_members_tag(segment=segment, tag=tag, actor=request.user, remove=remove)
        else:
            customer_ids, report = upload_match(upload_text(request.FILES.get("file")))
            # Only customers the user sees; the others are left as they are.
            customer_ids = customers_visible_among(request.user, sorted(customer_ids))
            change = customers_untag if remove else customers_tag
            changed = change(customer_ids=sorted(customer_ids), tag=tag, actor=request.user, origin="import")
    except ValidationError as error:
        return _tag_page(request, tag, errors=error.message_dict, posted=request.POST, status=400)
    if remove:
        text = ngettext("%(count)s customer lost the tag.", "%(count)s customers lost the tag.", changed)
    else:
        text = ngettext("%(count)s customer got the tag.", "%(count)s customers got the tag.", changed)
    messages.success(request, text % {"count": changed})
    if report is not None and report.unmatched_count:
        return _tag_page(request, tag, report=report)
    return redirect("tag", tag_id=tag.pk)


@capability_required("manage_segments")
@require_POST
def tag_merge(request, tag_id: int):
    tag = get_object_or_404(Tag, pk=tag_id)
    into = get_object_or_404(Tag, pk=request.POST.get("into") or 0)
    try:
        gained = tags_merge(source=tag, into=into, actor=request.user)
    except ValidationError as error:
        return _tag_page(request, tag, errors=error.message_dict, posted=request.POST, status=400)
    messages.success(
        request,
        _("“%(tag)s” merged into “%(into)s”: %(count)s customers got “%(into)s”.")
        % {"tag": tag.name, "into": into.name, "count": gained},
    )
    return redirect("tag", tag_id=into.pk)


@capability_required("manage_segments")
@require_POST
def tag_remove(request, tag_id: int):
    tag = get_object_or_404(Tag, pk=tag_id)
    try:
        lost = tag_delete(tag=tag, actor=request.user)
    except ValidationError as error:
        return _tag_page(request, tag, errors=error.message_dict, status=400)
    text = ngettext(
        "Tag “%(name)s” deleted; %(count)s customer lost it.",
        "Tag “%(name)s” deleted; %(count)s customers lost it.",
        lost,
    )
    messages.success(request, text % {"name": tag.name, "count": lost})
    return redirect("tags")


def _customer(request, customer_id: int):
    customer = customer_resolve(customer_id=customer_id)
    if customer is None or not customer_visible(request.user, customer):
        raise Http404
    return customer


@capability_required("edit_customers")
@require_POST
def customer_tag_add(request, customer_id: int):
    customer = _customer(request, customer_id)
    tag = get_object_or_404(Tag, pk=request.POST.get("tag") or 0, kind=Tag.Kind.STATIC)
    if customers_tag(customer_ids=[customer.pk], tag=tag, actor=request.user):
        messages.success(request, _("Tagged “%(tag)s”.") % {"tag": tag.name})
    return redirect("customer", customer_id=customer.pk)


@capability_required("edit_customers")
@require_POST
def customer_tag_remove(request, customer_id: int, tag_id: int):
    customer = _customer(request, customer_id)
    tag = get_object_or_404(Tag, pk=tag_id, kind=Tag.Kind.STATIC)
    if customers_untag(customer_ids=[customer.pk], tag=tag, actor=request.user):
        messages.success(request, _("Removed the tag “%(tag)s”.") % {"tag": tag.name})
    return redirect("customer", customer_id=customer.pk)
