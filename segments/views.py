from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from cdp.access import capability_required, user_can
from cdp.customers import customer_resolve
from segments.models import Tag, TagGroup
from segments.tags import customers_tag, customers_untag, tag_group_save, tag_save, tags_overview


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


def _customer(customer_id: int):
    customer = customer_resolve(customer_id=customer_id)
    if customer is None:
        raise Http404
    return customer


@capability_required("edit_customers")
@require_POST
def customer_tag_add(request, customer_id: int):
    customer = _customer(customer_id)
    tag = get_object_or_404(Tag, pk=request.POST.get("tag") or 0, kind=Tag.Kind.STATIC)
    if customers_tag(customer_ids=[customer.pk], tag=tag, actor=request.user):
        messages.success(request, _("Tagged “%(tag)s”.") % {"tag": tag.name})
    return redirect("customer", customer_id=customer.pk)


@capability_required("edit_customers")
@require_POST
def customer_tag_remove(request, customer_id: int, tag_id: int):
    customer = _customer(customer_id)
    tag = get_object_or_404(Tag, pk=tag_id, kind=Tag.Kind.STATIC)
    if customers_untag(customer_ids=[customer.pk], tag=tag, actor=request.user):
        messages.success(request, _("Removed the tag “%(tag)s”.") % {"tag": tag.name})
    return redirect("customer", customer_id=customer.pk)
