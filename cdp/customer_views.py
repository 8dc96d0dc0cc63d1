"""The customer pages sales staff live in: the list with search, and the unified profile."""

import datetime as dt

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from cdp import customers as selectors
from cdp import services
from cdp.access import capability_required, user_can
from cdp.models import Source

User = get_user_model()
LIST_PAGE = 50


@capability_required("view_customers")
@vary_on_headers("HX-Request")
def customer_list(request):
    query, channel, role = (request.GET.get(key, "").strip() for key in ("q", "channel", "role"))
    page = Paginator(selectors.customer_search(query=query, channel=channel, role=role), LIST_PAGE).get_page(
        request.GET.get("page")
    )
    show_pii = user_can(request.user, "view_pii")
    rows = [
        (customer, selectors.customer_primary_phone(customer=customer, show_pii=show_pii))
        for customer in page
    ]
    context = {
        "page": page,
        "rows": rows,
        "filters": {"q": query, "channel": channel, "role": role},
        "filtered": bool(query or channel or role),
        "channels": Source.Kind.choices,
        "any_customer": bool(rows) or selectors.Customer.objects.exists(),
    }
    partial = request.htmx and not request.htmx.history_restore_request
    return render(request, "cdp/_customer_rows.html" if partial else "cdp/customers.html", context)


def _customer_or_404(customer_id: int):
    customer = selectors.customer_resolve(customer_id=customer_id)
    if customer is None:
        raise Http404
    return customer


def _cursor(value: str) -> tuple[dt.datetime, int] | None:
    try:
        moment, event_id = value.rsplit("_", 1)
        return dt.datetime.fromisoformat(moment), int(event_id)
    except ValueError:
        return None


@capability_required("view_customers")
def customer_profile(request, customer_id: int):
    customer = _customer_or_404(customer_id)
    if customer.pk != customer_id:
        return redirect("customer", customer_id=customer.pk)
    show_pii = user_can(request.user, "view_pii")
    channel, kind = request.GET.get("channel", ""), request.GET.get("kind", "")
    events = selectors.customer_timeline(customer=customer, channel=channel, kind=kind)
    context = {
        "customer": customer,
        "phone": selectors.customer_primary_phone(customer=customer, show_pii=show_pii),
        "roles": [role for role in str(customer.traits.get("role", "")).replace(",", " ").split() if role],
        "identities": selectors.customer_identities(customer=customer, show_pii=show_pii),
        "consents": selectors.customer_consents(customer=customer),
        "notes": customer.notes.select_related("author")[:20],
        "stats": selectors.customer_stats(customer=customer),
        "traits": sorted(
            (key, value)
            for key, value in customer.traits.items()
            if key not in {"phone", "email", "id_number"}
        ),
        "events": events,
        "more": len(events) == selectors.TIMELINE_PAGE,
        "filters": {"channel": channel, "kind": kind},
        "channels": Source.Kind.choices,
        "kinds": ["track", "identify", "page", "screen", "group", "alias"],
        "can_edit": user_can(request.user, "edit_customers"),
        "staff": User.objects.filter(is_active=True).order_by("first_name", "username"),
    }
    return render(request, "cdp/customer.html", context)


@capability_required("view_customers")
def customer_timeline(request, customer_id: int):
    """More of the timeline: older events (``before``) as the page scrolls, newer ones (``since``) live."""
    customer = _customer_or_404(customer_id)
    channel, kind = request.GET.get("channel", ""), request.GET.get("kind", "")
    before = _cursor(request.GET.get("before", ""))
    events = selectors.customer_timeline(customer=customer, channel=channel, kind=kind, before=before)
    since = _cursor(request.GET.get("since", ""))
    if since is not None:
        events = [event for event in events if (event.timestamp, event.pk) > since]
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
    customer = _customer_or_404(customer_id)
    try:
        services.note_add(customer=customer, author=request.user, text=request.POST.get("text", ""))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect("customer", customer_id=customer.pk)


@capability_required("edit_customers")
@require_POST
def customer_owner_assign(request, customer_id: int):
    customer = _customer_or_404(customer_id)
    owner_id = request.POST.get("owner")
    owner = User.objects.filter(pk=owner_id, is_active=True).first() if owner_id else None
    if owner_id and owner is None:
        messages.error(request, _("That colleague does not exist or is deactivated."))
    else:
        services.customer_assign_owner(customer=customer, owner=owner, actor=request.user)
        messages.success(request, _("Owner saved."))
    return redirect("customer", customer_id=customer.pk)
