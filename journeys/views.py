from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from cdp.access import capability_required, user_can
from cdp.customers import primary_phones
from journeys.gallery import TEMPLATES
from journeys.models import StaffTask
from journeys.selectors import staff_tasks_for
from journeys.services import staff_task_close
from segments.models import CustomerStage, CustomerTag


@capability_required("view_journeys")
def journeys(request):
    kind_labels = {
        "trigger": gettext_lazy("Trigger"),
        "flow": gettext_lazy("Flow"),
        "action": gettext_lazy("Action"),
    }
    # The gallery's live-stream sign-up journey, as the marketer will draw their own.
    example = TEMPLATES["live-stream-signup"].graph(lambda channel: 0)
    return render(request, "journeys/index.html", {"example_graph": example, "kind_labels": kind_labels})


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
        for task in tasks
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
    task = get_object_or_404(StaffTask, pk=task_id)
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
