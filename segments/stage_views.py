"""The lifecycle pages: the kanban of stages with the customers in each, the stages' definitions,
and the scoring rules."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from cdp.access import capability_required, user_can
from cdp.customers import primary_phones
from cdp.selectors import customers_visible_to
from segments.builder import rule_form_context
from segments.forms import ScoringRuleForm, StageForm
from segments.models import CustomerStage, LifecycleStage, ScoringRule
from segments.rules import RuleError
from segments.scoring import scoring_rule_pause, scoring_rule_save
from segments.services import known_event_names
from segments.stages import stage_board, stage_delete, stage_save, stage_users, stages_reorder


def _form_errors(form, error: Exception) -> None:
    """A service's refusal shown beside the fields it names (a rule's problems are shown by the
    rule builder at their conditions)."""
    for field, field_errors in error.message_dict.items():
        for message in field_errors:
            form.add_error(field if field in form.fields else None, message)


@capability_required("view_segments")
def lifecycle(request):
    board = stage_board(visible=customers_visible_to(request.user, via="customer"))
    phones = primary_phones(
        customer_ids=[card.customer_id for column in board for card in column["cards"]],
        show_pii=user_can(request.user, "view_pii"),
    )
    for column in board:
        for card in column["cards"]:
            card.phone = phones.get(card.customer_id, "")
    context = {
        "board": board,
        "can_manage": user_can(request.user, "manage_segments"),
    }
    return render(request, "segments/lifecycle.html", context)


@capability_required("manage_segments")
def stage_edit(request, stage_id: int | None = None):
    stage = get_object_or_404(LifecycleStage, pk=stage_id) if stage_id else None
    initial = (
        {"name": stage.name, "key": stage.key, "color": stage.color, "rule": stage.rule} if stage else {}
    )
    form = StageForm(request.POST or None, initial=initial or {"color": "#2563eb"})
    problems = []
    if request.method == "POST" and form.is_valid():
        values = form.cleaned_data
        try:
            saved = stage_save(
                key=stage.key if stage else values["key"],
                name=values["name"],
                color=values["color"],
                rule_data=values["rule"],
                stage=stage,
                actor=request.user,
            )
        except RuleError as error:
            problems = error.problems
            form.add_error(None, _("Fix the marked conditions of the rule."))
        except ValidationError as error:
            _form_errors(form, error)
        else:
            count = CustomerStage.objects.filter(stage=saved).count()
            messages.success(
                request,
                _("Stage “%(name)s” saved: %(count)s customers are in it now.")
                % {"name": saved.name, "count": count},
            )
            return redirect("lifecycle")
    context = {
        "form": form,
        "stage": stage,
        "users": stage_users(stage) if stage else [],
        **rule_form_context(
            request,
            stored_rule=stage.rule if stage else None,
            heading=stage.name if stage else _("New stage"),
            back_url=reverse("lifecycle"),
            back_label=_("Lifecycle"),
            rule_title=_("Who is in this stage"),
            rule_help=_("Every customer is in the furthest stage of the path whose rule they match."),
            submit_label=_("Save stage"),
            problems=problems,
            fixed_key=stage.key if stage else "",
        ),
    }
    return render(request, "segments/stage_form.html", context, status=400 if form.errors else 200)


@capability_required("manage_segments")
@require_POST
def stage_move(request, stage_id: int):
    """One step earlier or later on the path (``direction``: up / down)."""
    keys = list(LifecycleStage.objects.order_by("position", "pk").values_list("key", flat=True))
    stage = get_object_or_404(LifecycleStage, pk=stage_id)
    index = keys.index(stage.key)
    other = index - 1 if request.POST.get("direction") == "up" else index + 1
    if 0 <= other < len(keys):
        keys[index], keys[other] = keys[other], keys[index]
        stages_reorder(keys=keys, actor=request.user)
        messages.success(request, _("Stages reordered; customers moved to the stages they now match."))
    return redirect("lifecycle")


@capability_required("manage_segments")
@require_POST
def stage_remove(request, stage_id: int):
    stage = get_object_or_404(LifecycleStage, pk=stage_id)
    try:
        holders = stage_delete(stage=stage, actor=request.user)
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
        return redirect("lifecycle_stage", stage_id=stage.pk)
    messages.success(
        request,
        _("Stage “%(name)s” deleted; its %(count)s customers moved to the stages they match.")
        % {"name": stage.name, "count": holders},
    )
    return redirect("lifecycle")


@capability_required("view_segments")
def scoring(request, rule_id: int | None = None):
    """The scoring rules, and a form to add one (or change ``rule_id``)."""
    rule = get_object_or_404(ScoringRule, pk=rule_id) if rule_id else None
    initial = (
        {
            "name": rule.name,
            "event": rule.event,
            "where": rule.where or "",
            "points": rule.points,
            "cap": rule.cap,
            "cap_period": rule.cap_period,
            "expires_after_days": rule.expires_after_days,
        }
        if rule
        else {"cap_period": "day"}
    )
    form = ScoringRuleForm(request.POST or None, initial=initial)
    can_manage = user_can(request.user, "manage_segments")
    if request.method == "POST":
        if not can_manage:
            return render(request, "403.html", status=403)
        if form.is_valid():
            try:
                saved = scoring_rule_save(**form.cleaned_data, rule=rule, actor=request.user)
            except ValidationError as error:
                _form_errors(form, error)
            else:
                messages.success(request, _("Scoring rule “%(name)s” saved.") % {"name": saved.name})
                return redirect("scoring")
    context = {
        "rules": ScoringRule.objects.all(),
        "form": form,
        "editing": rule,
        "can_manage": can_manage,
        "event_names": sorted(known_event_names()),
    }
    return render(request, "segments/scoring.html", context, status=400 if form.errors else 200)


@capability_required("manage_segments")
@require_POST
def scoring_toggle(request, rule_id: int):
    rule = scoring_rule_pause(rule=get_object_or_404(ScoringRule, pk=rule_id), actor=request.user)
    if rule.active:
        messages.success(request, _("“%(name)s” awards points again.") % {"name": rule.name})
    else:
        messages.success(
            request, _("“%(name)s” is paused; points awarded so far stay.") % {"name": rule.name}
        )
    return redirect("scoring")
