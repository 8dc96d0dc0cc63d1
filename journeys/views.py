"""The journey pages: the list (status, live version, entered, in the journey, converted), a journey's
page (its numbers and each node's, updated live as customers move, conversion per version, pause /
resume / archive), the customers waiting at one node, and staff's "My tasks"."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, pgettext
from django.views.decorators.http import require_POST

from cdp.access import capability_required, user_can
from cdp.customers import customer_by_identifier, primary_phones
from cdp.redaction import redact_fields
from cdp.selectors import customer_visible, customers_visible_to
from journeys.canvas import canvas_setup
from journeys.gallery import TEMPLATES, journey_from_template, templates_list
from journeys.models import Enrollment, Journey, StaffTask
from journeys.nodes import NODE_TYPES
from journeys.selectors import (
    customers_at_node,
    journey_summary,
    journeys_overview,
    node_counts,
    staff_tasks_for,
    steps_late,
    version_conversion,
)
from journeys.services import journey_save, journey_set_status, staff_task_close
from journeys.testmode import SimulatedEvent, journey_test_run, test_report_shown
from segments.models import CustomerStage, CustomerTag

KIND_LABELS = {
    "trigger": gettext_lazy("Trigger"),
    "flow": gettext_lazy("Flow"),
    "action": gettext_lazy("Action"),
}
CUSTOMERS_PER_PAGE = 50


@capability_required("view_journeys")
def journeys(request):
    return render(
        request,
        "journeys/index.html",
        {
            "journeys": list(journeys_overview()),
            # The gallery's live-stream sign-up journey, as the marketer will draw their own.
            "example_graph": TEMPLATES["live-stream-signup"].graph(lambda channel: 0),
            "kind_labels": KIND_LABELS,
            "can_manage": user_can(request.user, "manage_journeys"),
        },
    )


@capability_required("manage_journeys")
@require_POST
def journey_new(request):
    """An empty draft, opened on the canvas."""
    journey = journey_save(
        name=pgettext("the name of a journey just created", "New journey"), actor=request.user
    )
    return redirect("journey_edit", journey_id=journey.pk)


@capability_required("view_journeys")
def journey_gallery(request):
    """Ready journeys to start from, by category, each drawn with what it needs before publishing."""
    categories: dict[str, list[dict]] = {}
    for template in templates_list():
        categories.setdefault(template["category"], []).append(template)
    return render(
        request,
        "journeys/gallery.html",
        {
            "categories": categories,
            "kind_labels": KIND_LABELS,
            "can_manage": user_can(request.user, "manage_journeys"),
        },
    )


@capability_required("manage_journeys")
@require_POST
def journey_template_use(request, key: str):
    """A draft from the template, opened on the canvas with what is left to complete."""
    try:
        journey, created, problems = journey_from_template(key=key, actor=request.user)
    except LookupError:
        raise Http404(key) from None
    if created:
        messages.info(request, _("Tags created for it: %(tags)s.") % {"tags": ", ".join(created)})
    if problems:
        messages.warning(
            request,
            ngettext(
                "%(count)s thing is left to complete before publishing: Validate shows it on its step.",
                "%(count)s things are left to complete before publishing: Validate shows each on its step.",
                len(problems),
            )
            % {"count": len(problems)},
        )
    return redirect("journey_edit", journey_id=journey.pk)


@capability_required("view_journeys")
def journey_edit(request, journey_id: int):
    """The canvas: the draft to draw on, its versions, and the live counts once published."""
    journey = get_object_or_404(Journey, pk=journey_id)
    setup = canvas_setup(journey=journey, can_manage=user_can(request.user, "manage_journeys"))
    return render(request, "journeys/edit.html", {"journey": journey, "canvas_setup": setup})


def node_rows(graph: dict, counts: dict[str, dict]) -> list[dict]:
    """The graph's nodes in drawing order, each with its name, type and numbers."""
    rows = []
    for node in graph.get("nodes", []) if isinstance(graph, dict) else []:
        kind = NODE_TYPES.get(node.get("type"))
        config = node.get("config") or {}
        count = counts.get(node.get("id"), {"entered": 0, "waiting": 0, "left": {}})
        rows.append(
            {
                "id": node.get("id"),
                "name": config.get("label") or (kind.label if kind else node.get("type")),
                "type": kind.label if kind else _("unknown type %(type)s") % {"type": node.get("type")},
                "kind": kind.kind if kind else "",
                "entered": count["entered"],
                "waiting": count["waiting"],
                "left": sorted(count["left"].items()),
            }
        )
    return rows


@capability_required("view_journeys")
def journey(request, journey_id: int):
    journey = get_object_or_404(Journey, pk=journey_id)
    version = journey.live_version
    graph = version.graph if version else journey.draft_graph
    nodes = node_rows(graph, node_counts(journey=journey))
    late = steps_late(journey=journey)
    for row in nodes:
        row["late"] = late.pop(row["id"], None)
    # Steps no longer in the shown graph (an older version's) are flagged too, by their id.
    late_rows = [row for row in nodes if row["late"]] + [
        {"id": node_id, "name": node_id, "type": "", "late": entry} for node_id, entry in late.items()
    ]
    return render(
        request,
        "journeys/detail.html",
        {
            "journey": journey,
            "version": version,
            "graph": graph,
            "summary": journey_summary(journey=journey),
            "nodes": nodes,
            "late_rows": late_rows,
            "versions": version_conversion(journey=journey),
            "kind_labels": KIND_LABELS,
            "can_manage": user_can(request.user, "manage_journeys"),
        },
    )


@capability_required("view_journeys")
def journey_node(request, journey_id: int, node_id: str):
    journey = get_object_or_404(Journey, pk=journey_id)
    version = journey.live_version
    graph = version.graph if version else journey.draft_graph
    node = next((row for row in node_rows(graph, {}) if row["id"] == node_id), None)
    at_node = customers_at_node(
        journey=journey, node_id=node_id, visible=customers_visible_to(request.user, via="customer")
    )
    page = Paginator(at_node, CUSTOMERS_PER_PAGE).get_page(request.GET.get("page"))
    phones = primary_phones(
        customer_ids=[enrollment.customer_id for enrollment in page],
        show_pii=user_can(request.user, "view_pii"),
    )
    context = {
        "journey": journey,
        "node_id": node_id,
        "node": node,
        "page": page,
        "rows": [(enrollment, phones.get(enrollment.customer_id, "")) for enrollment in page],
    }
    # "Show more" asks for the next rows only.
    template = "journeys/_node_rows.html" if request.headers.get("HX-Request") else "journeys/node.html"
    return render(request, template, context)


@capability_required("manage_journeys")
def journey_test(request, journey_id: int):
    """Test mode on a page: the journey (its draft or a version) run for one customer on a simulated
    clock, optionally with something the customer does on the way; the path with each decision's
    reason. Nothing it does stays (see journeys.testmode)."""
    journey = get_object_or_404(Journey, pk=journey_id)
    versions = list(journey.versions.order_by("-number").values_list("number", flat=True))
    form = {
        "customer": request.POST.get("customer", "").strip(),
        "version": request.POST.get("version", ""),
        "event": request.POST.get("event", "").strip(),
        "after_minutes": request.POST.get("after_minutes", "").strip(),
    }
    errors: dict[str, str] = {}
    report = None
    if request.method == "POST":
        customer = customer_by_identifier(query=form["customer"]) if form["customer"] else None
        if customer is None or not customer_visible(request.user, customer):
            errors["customer"] = _("Name one customer: a phone, an email, another identifier, or #id.")
        version = int(form["version"]) if form["version"].isdigit() else None
        if version is not None and version not in versions:
            errors["version"] = _("This journey has no such version.")
        after = form["after_minutes"] or "0"
        if form["event"] and not after.isdigit():
            errors["after_minutes"] = _("Give whole minutes from 0.")
        if not errors:
            events = (
                [SimulatedEvent(name=form["event"], after_seconds=int(after) * 60)] if form["event"] else []
            )
            try:
                report = test_report_shown(
                    journey_test_run(journey=journey, customer=customer, version=version, events=events),
                    show_pii=user_can(request.user, "view_pii"),
                )
            except ValidationError as error:
                errors["run"] = " ".join(error.messages)
            else:
                report["customer"] = customer
                report["status_label"] = Enrollment.Status(report["status"]).label
                for step in report["steps"]:
                    step["after"] = step["entered_at"] - report["started_at"]
    return render(
        request,
        "journeys/test.html",
        {"journey": journey, "versions": versions, "form": form, "errors": errors, "report": report},
    )


STATUS_ACTIONS = {
    "pause": (
        Journey.Status.PAUSED,
        gettext_lazy("Paused: nobody enters and nobody moves on until you resume."),
    ),
    "resume": (Journey.Status.ACTIVE, gettext_lazy("Resumed: customers move on where they waited.")),
    "archive": (Journey.Status.ARCHIVED, gettext_lazy("Archived: everyone still in the journey left it.")),
}


@capability_required("manage_journeys")
@require_POST
def journey_status(request, journey_id: int, action: str):
    journey = get_object_or_404(Journey, pk=journey_id)
    status, done = STATUS_ACTIONS[action]
    try:
        journey_set_status(journey=journey, status=status, actor=request.user)
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
    else:
        messages.success(request, str(done))
    return redirect("journey", journey_id=journey.pk)


def _task_cards(tasks: list[StaffTask], *, show_pii: bool) -> list[dict]:
    customer_ids = [task.customer_id for task in tasks]
    phones = primary_phones(customer_ids=customer_ids, show_pii=show_pii)
    tags: dict[int, list] = {}
    for held in (
        CustomerTag.objects.filter(customer_id__in=customer_ids).select_related("tag").order_by("tag__name")
    ):
        tags.setdefault(held.customer_id, []).append(held.tag)
    stages = {
        row.customer_id: row.stage
        for row in CustomerStage.objects.filter(customer_id__in=customer_ids).select_related("stage")
    }
    now = timezone.now()
    return [
        {
            "task": task,
            "customer": task.customer,
            "phone": phones.get(task.customer_id, ""),
            "tags": tags.get(task.customer_id, [])[:6],
            "stage": stages.get(task.customer_id),
            "overdue": task.status == StaffTask.Status.OPEN and task.due_at < now,
        }
        for task in redact_fields(tasks, "title", "note", "outcome_note", show_pii=show_pii)
    ]


@capability_required("work_tasks")
def my_tasks(request):
    """The signed-in person's open tasks (and those nobody owns), soonest due first; then what they
    closed lately."""
    show_pii = user_can(request.user, "view_pii")
    open_tasks = list(staff_tasks_for(user=request.user)[:200])
    closed = list(staff_tasks_for(user=request.user, status=StaffTask.Status.DONE)[:20]) + list(
        staff_tasks_for(user=request.user, status=StaffTask.Status.NOT_REACHED)[:20]
    )
    closed.sort(key=lambda task: task.closed_at, reverse=True)
    return render(
        request,
        "journeys/tasks.html",
        {
            "open_cards": _task_cards(open_tasks, show_pii=show_pii),
            "closed_cards": _task_cards(closed[:20], show_pii=show_pii),
        },
    )


@capability_required("work_tasks")
@require_POST
def task_close(request, task_id: int):
    task = get_object_or_404(
        StaffTask.objects.filter(customers_visible_to(request.user, via="customer")), pk=task_id
    )
    try:
        staff_task_close(
            task=task,
            outcome=request.POST.get("outcome", ""),
            note=request.POST.get("note", ""),
            actor=request.user,
        )
    except ValidationError as error:
        for problem in error.message_dict.get("outcome", []):
            messages.error(request, problem)
    else:
        messages.success(request, _("Task “%(title)s” closed.") % {"title": task.title})
    return redirect("my_tasks")
