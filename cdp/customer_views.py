"""The customer pages sales staff live in: the list with search, and the unified profile."""

import datetime as dt

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from cdp import customers as selectors
from cdp import services
from cdp.access import capability_required, user_can
from cdp.merge import MergeConflict, customers_merge_by_hand, customers_unmerge, review_open, review_resolve
from cdp.models import MergeLog, MergeReview, Source
from cdp.redaction import redact_fields
from cdp.roles import customer_roles
from cdp.selectors import customer_visible, customers_visible_to
from journeys.selectors import customer_staff_tasks
from segments.models import Tag
from segments.scoring import score_adjust
from segments.selectors import customer_rule_facts
from segments.tags import customer_tag_groups

User = get_user_model()
LIST_PAGE = 50


@capability_required("view_customers")
@vary_on_headers("HX-Request")
def customer_list(request):
    query, channel, role = (request.GET.get(key, "").strip() for key in ("q", "channel", "role"))
    visible = customers_visible_to(request.user)
    page = selectors.list_page(
        selectors.customer_search(query=query, channel=channel, role=role).filter(visible),
        number=request.GET.get("page"),
        size=LIST_PAGE,
    )
    show_pii = user_can(request.user, "view_pii")
    phones = selectors.primary_phones(customer_ids=[customer.pk for customer in page], show_pii=show_pii)
    rows = [(customer, phones.get(customer.pk, "")) for customer in page]
    context = {
        "page": page,
        "rows": rows,
        "filters": {"q": query, "channel": channel, "role": role},
        "filtered": bool(query or channel or role),
        "channels": Source.Kind.choices,
        "any_customer": bool(rows) or selectors.Customer.objects.filter(visible).exists(),
    }
    partial = request.htmx and not request.htmx.history_restore_request
    return render(request, "cdp/_customer_rows.html" if partial else "cdp/customers.html", context)


def _customer_or_404(request, customer_id: int):
    """The customer (or the one it was merged into), if this user's roles let them see it."""
    customer = selectors.customer_resolve(customer_id=customer_id)
    if customer is None or not customer_visible(request.user, customer):
        raise Http404
    return customer


def _shown(events: list, show_pii: bool) -> list:
    for event in events:
        event.shown_properties = selectors.reason_translated(
            selectors.redact(event.properties, show_pii=show_pii)
        )
    return events


def _cursor(value: str) -> tuple[dt.datetime, int] | None:
    try:
        moment, event_id = value.rsplit("_", 1)
        return dt.datetime.fromisoformat(moment), int(event_id)
    except ValueError:
        return None


@capability_required("view_customers")
def customer_profile(request, customer_id: int):
    customer = _customer_or_404(request, customer_id)
    if customer.pk != customer_id:
        return redirect("customer", customer_id=customer.pk)
    show_pii = user_can(request.user, "view_pii")
    channel, kind = request.GET.get("channel", ""), request.GET.get("kind", "")
    events = _shown(selectors.customer_timeline(customer=customer, channel=channel, kind=kind), show_pii)
    context = {
        "customer": customer,
        "phone": selectors.customer_primary_phone(customer=customer, show_pii=show_pii),
        "show_pii": show_pii,
        "roles": customer_roles(customer=customer),
        "tag_groups": customer_tag_groups(customer=customer),
        "rule_facts": customer_rule_facts(customer=customer),
        "static_tags": Tag.objects.filter(kind=Tag.Kind.STATIC).order_by("name"),
        "identities": selectors.customer_identities(customer=customer, show_pii=show_pii),
        "consents": selectors.customer_consents(customer=customer),
        "notes": redact_fields(customer.notes.select_related("author")[:20], "text", show_pii=show_pii),
        "staff_tasks": redact_fields(
            customer_staff_tasks(customer=customer), "title", "note", "outcome_note", show_pii=show_pii
        ),
        "stats": selectors.customer_stats(customer=customer),
        "traits": sorted(selectors.redact(customer.traits, show_pii=show_pii).items()),
        "events": events,
        "more": len(events) == selectors.TIMELINE_PAGE,
        "filters": {"channel": channel, "kind": kind},
        "channels": Source.Kind.choices,
        "kinds": ["track", "identify", "page", "screen", "group", "alias"],
        "can_edit": user_can(request.user, "edit_customers"),
        "staff": User.objects.filter(is_active=True).order_by("first_name", "username"),
        "merges": MergeLog.objects.filter(survivor=customer).order_by("-created_at")[:20],
        "open_reviews": MergeReview.objects.filter(status=MergeReview.Status.OPEN)
        .filter(Q(first=customer) | Q(second=customer))
        .count(),
    }
    return render(request, "cdp/customer.html", context)


@capability_required("view_customers")
def customer_timeline(request, customer_id: int):
    """More of the timeline: older events (``before``) as the page scrolls, and live the events stored
    after the newest one shown (``since``: an event id, so late-dated events still appear)."""
    customer = _customer_or_404(request, customer_id)
    channel, kind = request.GET.get("channel", ""), request.GET.get("kind", "")
    before = _cursor(request.GET.get("before", ""))
    since = request.GET.get("since", "")
    since = int(since) if since.isdigit() else None
    events = selectors.customer_timeline(
        customer=customer, channel=channel, kind=kind, before=before, after_id=since
    )
    events = _shown(events, user_can(request.user, "view_pii"))
    context = {
        "customer": customer,
        "events": events,
        "filters": {"channel": channel, "kind": kind},
        "more": since is None and len(events) == selectors.TIMELINE_PAGE,
        "live": since is not None,
    }
    return render(request, "cdp/_timeline.html", context)


@capability_required("edit_customers")
@require_POST
def customer_note_add(request, customer_id: int):
    customer = _customer_or_404(request, customer_id)
    try:
        services.note_add(customer=customer, author=request.user, text=request.POST.get("text", ""))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect("customer", customer_id=customer.pk)


SCORE_FIELDS = {
    "points": _lazy("Points"),
    "reason": _lazy("Reason"),
    "lapse_days": _lazy("Lapses after (days)"),
    "customer": _lazy("Profile"),
}


@capability_required("edit_customers")
@require_POST
def customer_score_adjust(request, customer_id: int):
    customer = _customer_or_404(request, customer_id)
    try:
        entry = score_adjust(
            customer=customer,
            points=request.POST.get("points", ""),
            reason=request.POST.get("reason", ""),
            lapse_days=request.POST.get("lapse_days", ""),
            actor=request.user,
        )
    except ValidationError as error:
        for field, problems in error.message_dict.items():
            messages.error(request, f"{SCORE_FIELDS.get(field, field)}: {' '.join(problems)}")
    else:
        messages.success(request, _("Score adjusted by %(points)+d.") % {"points": entry.points})
    return redirect(f"{reverse('customer', args=[customer.pk])}#score")


@capability_required("edit_customers")
@require_POST
def customer_owner_assign(request, customer_id: int):
    customer = _customer_or_404(request, customer_id)
    owner_id = request.POST.get("owner")
    owner = User.objects.filter(pk=owner_id, is_active=True).first() if owner_id else None
    if owner_id and owner is None:
        messages.error(request, _("That colleague does not exist or is deactivated."))
    else:
        services.customer_assign_owner(customer=customer, owner=owner, actor=request.user)
        messages.success(request, _("Owner saved."))
    return redirect("customer", customer_id=customer.pk)


@capability_required("edit_customers")
@require_POST
def customer_merge(request, customer_id: int):
    """Merge this profile with another one staff know to be the same person (found by id, phone, email)."""
    customer = _customer_or_404(request, customer_id)
    query = request.POST.get("other", "").strip()
    other = selectors.customer_by_identifier(query=query, excluding=customer)
    if other is None or other.pk == customer.pk or not customer_visible(request.user, other):
        messages.error(request, _("No other customer matches “%(query)s”.") % {"query": query})
        return redirect("customer", customer_id=customer.pk)
    try:
        log = customers_merge_by_hand(customer=customer, other=other, actor=request.user)
    except MergeConflict as conflict:
        messages.error(
            request, _("Not merged: %(reason)s. Use the merge review to override.") % {"reason": conflict}
        )
        review_open(first_id=customer.pk, second_id=other.pk, reason=str(conflict))
        return redirect("customer", customer_id=customer.pk)
    messages.success(request, _("Merged. Undo it under Merge history if it was a mistake."))
    return redirect("customer", customer_id=log.survivor_id)


@capability_required("edit_customers")
@require_POST
def customer_unmerge(request, customer_id: int, log_id: int):
    customer = _customer_or_404(request, customer_id)
    log = get_object_or_404(MergeLog, pk=log_id, survivor=customer)
    try:
        restored = customers_unmerge(log=log, actor=request.user)
    except MergeConflict as conflict:
        messages.error(request, str(conflict))
        return redirect("customer", customer_id=customer.pk)
    messages.success(request, _("The merge is undone; the other profile is separate again."))
    return redirect("customer", customer_id=restored.pk)


@capability_required("edit_customers")
def merge_reviews(request):
    reviews = MergeReview.objects.filter(
        customers_visible_to(request.user, via="first"),
        customers_visible_to(request.user, via="second"),
        status=MergeReview.Status.OPEN,
    )
    shown = reviews.select_related("first", "second").prefetch_related(
        selectors.identities_prefetch("first__identities"),
        selectors.identities_prefetch("second__identities"),
    )
    show_pii = user_can(request.user, "view_pii")
    reviews_shown = redact_fields(shown.order_by("created_at")[:50], "reason", show_pii=show_pii)
    rows = [
        {
            "review": review,
            "sides": [
                {
                    "customer": side,
                    "identities": selectors.identity_rows(
                        identities=side.identities.all(), show_pii=show_pii
                    ),
                }
                for side in (review.first, review.second)
            ],
        }
        for review in reviews_shown
    ]
    return render(request, "cdp/merge_reviews.html", {"rows": rows, "open_count": reviews.count()})


@capability_required("edit_customers")
@require_POST
def merge_review_resolve(request, review_id: int):
    review = get_object_or_404(
        MergeReview.objects.filter(
            customers_visible_to(request.user, via="first"), customers_visible_to(request.user, via="second")
        ),
        pk=review_id,
    )
    merge = request.POST.get("decision") == "merge"
    if merge and not user_can(request.user, "manage_data"):
        # The rules forbade this merge (two ID numbers, say): overriding them is for data managers.
        raise PermissionDenied(_("Only people who manage data may merge against the identity rules."))
    review_resolve(review=review, merge=merge, actor=request.user)
    messages.success(request, _("Merged.") if merge else _("Kept apart."))
    return redirect("merge_reviews")
