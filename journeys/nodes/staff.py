"""Action nodes that hand over to people: set the customer's lifecycle stage, and create a task for
the customer's owner that the journey then waits on (done, not reached, or nobody closed it in time)."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth import get_user_model
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from pydantic import Field, model_validator

from journeys.models import StaffTask
from journeys.nodes import node_type
from journeys.nodes.base import (
    DEFAULT_HANDLE,
    Follow,
    NodeConfig,
    NodeFailed,
    NodeType,
    StepContext,
    Wait,
    wait_until,
)
from segments.graph import stage_node
from segments.models import LifecycleStage
from segments.stages import customers_stage_set

# -- lifecycle stage -------------------------------------------------------------------------------


class SetStageConfig(NodeConfig):
    stage: str = Field(min_length=1, max_length=100, description="The lifecycle stage's key.")


@node_type("set_stage")
class SetStage(NodeType):
    kind = "action"
    label = gettext_lazy("Set the lifecycle stage")
    description = gettext_lazy(
        "Moves the customer to a lifecycle stage; stage rules may take them further, never back before it."
    )
    icon = "stages"
    config = SetStageConfig

    def reference_problems(self, config: SetStageConfig) -> list[str]:
        if not LifecycleStage.objects.filter(key=config.stage).exists():
            return [_("There is no lifecycle stage with the key “%(key)s”.") % {"key": config.stage}]
        return []

    def references(self, config: SetStageConfig) -> set[str]:
        return {stage_node(config.stage)}

    def enter(self, ctx: StepContext) -> Follow:
        config: SetStageConfig = ctx.config
        stage = ctx.remembered(
            ("stage", config.stage), lambda: LifecycleStage.objects.filter(key=config.stage).first()
        )
        if stage is None:
            raise NodeFailed(_("The lifecycle stage “%(key)s” no longer exists.") % {"key": config.stage})
        customers_stage_set(
            customer_ids=[ctx.customer.pk], stage=stage, origin=f"journey {ctx.enrollment.journey_id}"
        )
        return Follow(DEFAULT_HANDLE, reason=f"stage {stage.key}")


# -- staff task ------------------------------------------------------------------------------------


class CreateTaskConfig(NodeConfig):
    title: str = Field(min_length=1, max_length=200, description="What the person should do.")
    note: str = Field("", max_length=2000, description="Details shown with the task.")
    due_in_seconds: int = Field(
        86400, ge=60, le=90 * 86400, description="When the task is due, counted from its creation."
    )
    timeout_seconds: int = Field(
        3 * 86400,
        ge=60,
        le=180 * 86400,
        description="Leave by “timed_out” when nobody has closed the task this long after its creation.",
    )
    fallback_assignee: str = Field(
        "",
        max_length=150,
        description="The user name that gets the task when the customer has no owner (empty: anyone).",
    )

    @model_validator(mode="after")
    def _due_before_timeout(self) -> CreateTaskConfig:
        if self.timeout_seconds < self.due_in_seconds:
            raise ValueError("timeout_seconds must not end before the task is due (due_in_seconds)")
        return self


@node_type("create_task")
class CreateTask(NodeType):
    kind = "action"
    label = gettext_lazy("Create a task for the owner")
    description = gettext_lazy(
        "Gives the customer's owner a task with a due time, then follows its outcome: done, not "
        "reached, or timed out."
    )
    icon = "check"
    config = CreateTaskConfig
    handles = ("done", "not_reached", "timed_out")

    def reference_problems(self, config: CreateTaskConfig) -> list[str]:
        if config.fallback_assignee and not self._user(config.fallback_assignee):
            return [_("There is no active user “%(name)s”.") % {"name": config.fallback_assignee}]
        return []

    @staticmethod
    def _user(name: str):
        return get_user_model().objects.filter(username=name, is_active=True).first()

    def enter(self, ctx: StepContext) -> Follow | Wait:
        config: CreateTaskConfig = ctx.config
        assignee = ctx.customer.owner
        if assignee is None and config.fallback_assignee:
            assignee = ctx.remembered(
                ("user", config.fallback_assignee), lambda: self._user(config.fallback_assignee)
            )
        from journeys.services import staff_task_create  # services import the registry: not at load

        task, _created = staff_task_create(
            customer=ctx.customer,
            title=config.title,
            note=config.note,
            due_at=ctx.now + dt.timedelta(seconds=config.due_in_seconds),
            assignee=assignee,
            journey_id=ctx.enrollment.journey_id,
            node_id=ctx.node_id,
            key=ctx.step_key,
            now=ctx.now,
        )
        return self._outcome(task, until=ctx.now + dt.timedelta(seconds=config.timeout_seconds), ctx=ctx)

    def resume(self, ctx: StepContext) -> Follow | Wait:
        task = StaffTask.objects.filter(key=ctx.step_key).first()
        if task is None:
            raise NodeFailed(_("The task this step created is gone."))
        return self._outcome(task, until=wait_until(ctx, ctx.config.timeout_seconds), ctx=ctx)

    @staticmethod
    def _outcome(task: StaffTask, *, until: dt.datetime, ctx: StepContext) -> Follow | Wait:
        if task.status != StaffTask.Status.OPEN:
            who = task.closed_by.get_username() if task.closed_by else "-"
            return Follow(task.status, reason=f"task {task.pk} closed by {who}")
        if ctx.now >= until:
            return Follow("timed_out", reason=f"task {task.pk} still open")
        return Wait(
            until=until, events=(StaffTask.CLOSED_EVENT,), match_property="task_key", match_value=task.key
        )
