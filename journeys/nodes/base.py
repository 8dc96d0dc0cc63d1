"""What every node type shares: its config model, its handles, its palette entry, and how it runs.

A node runs in two halves. ``enter`` does the node's work once per visit (the engine records the
step first, so a replay never does it twice) and answers with what comes next: a handle to follow
(``Follow``), a wait (``Wait``: until a time, for events, or both), or the end (``End``). When a wait
ends (its time came or an awaited event arrived), ``resume`` is asked the same question again.

The engine moves a batch of enrollments together: those at the same node enter it with one call of
``enter_many`` (and resume with ``resume_many``). By default these call ``enter`` / ``resume`` for each;
a node type whose work is cheaper for many at once (a send: one outbox insert; a condition: one query
per branch) overrides them. They answer one result per context, in order, or the ``NodeFailed`` of a
customer the node cannot run for.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.utils.translation import gettext as _
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from segments.rules import RuleError

DEFAULT_HANDLE = "default"
# The pydantic error type of a config value that is not a valid rule; its context lists the rule's
# problems, each with its JSON path, so the canvas can show them at their conditions.
RULE_INVALID = "rule_invalid"


def rule_invalid(error: RuleError) -> PydanticCustomError:
    return PydanticCustomError(RULE_INVALID, "{summary}", {"summary": str(error), "problems": error.problems})


@dataclass(frozen=True)
class ConfigProblem:
    """A problem at one place of a node's config: ``field`` is its path in the config
    ("branches.0.rule") and, inside a rule, ``path`` the JSON path of the condition ("$.and[1].event")."""

    message: str
    field: str = ""
    path: str = ""


class NodeConfig(BaseModel):
    """Fields every node's config may hold besides its own."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field("", max_length=200, description="The name shown on the canvas.")
    ends: list[str] = Field(
        default_factory=list,
        description=(
            "Handles deliberately left unconnected: a customer leaving by one of them completes the journey."
        ),
    )


@dataclass(frozen=True)
class Follow:
    handle: str
    reason: str = ""


@dataclass(frozen=True)
class Wait:
    """Wait until ``until`` (None: no time limit), or until one of ``events`` arrives for the customer;
    with ``match_property``, only an event whose property has ``match_value`` counts."""

    until: dt.datetime | None = None
    events: tuple[str, ...] = ()
    match_property: str = ""
    match_value: Any = None
    reason: str = ""


@dataclass(frozen=True)
class End:
    status: str = "completed"  # or "exited"
    reason: str = ""


Result = Follow | Wait | End

# A wait for a call that leaves the product (a webhook): the engine makes it outside its batch's
# transaction, within a time budget (``journeys.calls``), and hands the answer to ``resume`` as
# ``ctx.woken_by["call"]``. The engine's claim skips enrollments whose call is still to be made.
CALL_PENDING = "call_pending"


def call_pending(ctx: StepContext) -> Wait:
    """The answer of a node's ``enter`` whose work is ``call_outside``."""
    return Wait(until=ctx.now, match_property=CALL_PENDING)


@dataclass(frozen=True)
class HandlesWhen:
    """Output handles that replace the node type's own while a config field has a value: a goal that
    ends the journey has none. Declared as data, so the canvas derives a node's handles as the server
    does (the palette lists each node type's rules)."""

    field: str
    equals: Any
    handles: tuple[str, ...] = ()


class NodeFailed(Exception):
    """The node cannot run for this customer (a referenced account is gone, a config no longer
    parses): the enrollment fails with this reason, the engine goes on with the others."""


@dataclass
class StepContext:
    enrollment: Any  # journeys.models.Enrollment
    customer: Any  # cdp.models.Customer
    node_id: str
    visit: int
    config: NodeConfig
    now: dt.datetime
    # The event that ended the wait ({"id", "name", "properties"}), when one did.
    woken_by: dict | None = None
    # When the wait started and until when it was meant to last (for resume).
    waiting_match: dict = field(default_factory=dict)
    # Lookups shared by the enrollments of one batch (an account, a template): a batch lasts seconds.
    memo: dict = field(default_factory=dict)

    def remembered(self, key: tuple, load):
        if key not in self.memo:
            self.memo[key] = load()
        return self.memo[key]

    def account(self, account_id: int):
        """The channel account the step sends on (looked up once per batch); the step fails if it is
        gone."""
        from connectors.models import ChannelAccount

        account = self.remembered(
            ("account", account_id), lambda: ChannelAccount.objects.filter(pk=account_id).first()
        )
        if account is None:
            raise NodeFailed(_("The channel account %(id)s no longer exists.") % {"id": account_id})
        return account

    @property
    def step_key(self) -> str:
        """The idempotency key of anything this visit sends: one send per (enrollment, node, visit)."""
        return f"journey:{self.enrollment.pk}:{self.node_id}:{self.visit}"


def wait_until(ctx: StepContext, seconds: int) -> dt.datetime:
    """When the node's wait ends: as recorded when it began, else (a replayed visit) counted from
    when the visit began."""
    if ctx.waiting_match.get("until"):
        return dt.datetime.fromisoformat(ctx.waiting_match["until"])
    return dt.datetime.fromisoformat(ctx.waiting_match["since"]) + dt.timedelta(seconds=seconds)


class NodeType:
    """One kind of node. Subclasses set the class attributes and override ``enter`` (and ``resume``
    if they wait); triggers override ``trigger_event`` and ``trigger_matches``."""

    key: ClassVar[str]
    kind: ClassVar[str]  # trigger, flow, action
    label: ClassVar[Any]  # lazily translated
    description: ClassVar[Any]
    icon: ClassVar[str] = "circle"
    config: ClassVar[type[NodeConfig]] = NodeConfig
    handles: ClassVar[tuple[str, ...]] = (DEFAULT_HANDLE,)
    # Whether the handles come from the config (a condition's branches) rather than ``handles``.
    dynamic_handles: ClassVar[bool] = False
    # Config values that change the handles; the first rule that holds wins.
    handles_when: ClassVar[tuple[HandlesWhen, ...]] = ()

    def output_handles(self, config: NodeConfig) -> list[str]:
        for rule in self.handles_when:
            if getattr(config, rule.field, None) == rule.equals:
                return list(rule.handles)
        return list(self.handles)

    def reference_problems(self, config: NodeConfig) -> list[str | ConfigProblem]:
        """What the config names that does not exist (a tag, a segment, an account, a template): a
        text about the config as a whole, or a ``ConfigProblem`` that says where."""
        return []

    def references(self, config: NodeConfig) -> set[str]:
        """What the config reads that rules maintain, as the rule graph names it (``tag:<key>``,
        ``segment:<key>``, ``stage:<key>``): deleting one of them is refused while a journey uses it."""
        return set()

    def enter(self, ctx: StepContext) -> Result:
        return Follow(self.handles[0]) if self.handles else End()

    def resume(self, ctx: StepContext) -> Result:
        return Follow(self.handles[0]) if self.handles else End()

    def call_outside(self, ctx: StepContext) -> Follow:
        """The work of a node whose ``enter`` answered ``call_pending``: run by the engine outside any
        transaction, so it reads nothing from the database; the handle it answers reaches ``resume``."""
        raise NotImplementedError

    def enter_many(self, ctxs: list[StepContext]) -> list[Result | NodeFailed]:
        return _each(self.enter, ctxs)

    def resume_many(self, ctxs: list[StepContext]) -> list[Result | NodeFailed]:
        return _each(self.resume, ctxs)


def _each(run, ctxs: list[StepContext]) -> list[Result | NodeFailed]:
    results: list[Result | NodeFailed] = []
    for ctx in ctxs:
        try:
            results.append(run(ctx))
        except NodeFailed as failed:
            results.append(failed)
    return results


class TriggerType(NodeType):
    kind = "trigger"

    def trigger_event(self, config: NodeConfig) -> str | None:
        """The event name that starts it; None for a trigger no event starts (a scheduled audience)."""
        raise NotImplementedError

    def trigger_matches(self, config: NodeConfig, properties: dict, *, today: dt.date) -> bool:
        return True
