"""Action nodes that reach outside: call a webhook of the company's own systems, and start an AI
outbound call with the script chosen by the customer's tags, branching on the call's result.

The webhook is called outside the engine's transaction, within its time budget
(``journeys.calls``; docs/decisions/0016-webhook-node-calls-outside-the-transaction.md), through
``connectors.safe_http``: public addresses only, ports 80 and 443 unless an admin allows more, no
redirects."""

from __future__ import annotations

import datetime as dt
import json

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from connectors import safe_http
from connectors.models import ChannelAccount, Message, MessageTemplate
from connectors.protocol import Channel
from connectors.selectors import message_for_key
from connectors.services import message_enqueue
from journeys.models import tested_outcome
from journeys.nodes import node_type
from journeys.nodes.base import (
    Follow,
    NodeConfig,
    NodeFailed,
    NodeType,
    StepContext,
    Wait,
    call_pending,
    wait_until,
)
from journeys.selectors import call_duration
from segments.models import CustomerTag, TagGroup

# -- webhook ---------------------------------------------------------------------------------------

MAX_ANSWER = 64 * 1024


class CallWebhookConfig(NodeConfig):
    url: HttpUrl = Field(description="Where the customer and the journey's context are POSTed as JSON.")
    timeout_seconds: float = Field(5, gt=0, le=30, description="Give up (failed) after this long.")
    data: dict = Field(default_factory=dict, description="Fixed fields sent along as “data”.")

    @field_validator("url")
    @classmethod
    def _public(cls, url: HttpUrl) -> HttpUrl:
        problem = safe_http.url_problem(str(url))
        if problem:
            raise ValueError(problem)
        return url


@node_type("call_webhook")
class CallWebhook(NodeType):
    kind = "action"
    label = gettext_lazy("Call a webhook")
    description = gettext_lazy(
        "POSTs the customer and the journey's context as JSON to a URL; a 2xx answer is a success."
    )
    icon = "plug"
    config = CallWebhookConfig
    handles = ("success", "failed")

    def enter(self, ctx: StepContext) -> Follow | Wait:
        forced = tested_outcome(ctx.enrollment, ctx.node_id)
        if forced is not None:  # test mode calls nobody
            return Follow(forced if forced in self.handles else "success", reason="test mode: not called")
        return call_pending(ctx)

    def resume(self, ctx: StepContext) -> Follow | Wait:
        answer = (ctx.woken_by or {}).get("call")
        if answer is None:  # a replayed visit: the call is made (again, with the same key)
            return call_pending(ctx)
        return Follow(answer["handle"], reason=answer["reason"])

    def call_outside(self, ctx: StepContext) -> Follow:
        config: CallWebhookConfig = ctx.config
        customer = ctx.customer
        body = json.dumps(
            {
                "journey": ctx.enrollment.journey_id,
                "enrollment": ctx.enrollment.pk,
                "node": ctx.node_id,
                "at": ctx.now.isoformat(),
                "customer": {"id": customer.pk, "name": customer.name, "traits": customer.traits},
                "context": ctx.enrollment.context,
                "data": config.data,
            },
            ensure_ascii=False,
            default=str,
        ).encode()
        try:
            answer = safe_http.post(
                str(config.url),
                body=body,
                # A call made again (a crash before its answer was recorded) has the same key.
                headers={"Content-Type": "application/json", "Idempotency-Key": ctx.step_key},
                timeout=config.timeout_seconds,
                max_answer=MAX_ANSWER,
            )
        except safe_http.DestinationRefused as error:
            return Follow("failed", reason=f"refused: {error}"[:500])
        except safe_http.OutboundError as error:
            return Follow("failed", reason=f"no answer: {error}"[:500])
        if 200 <= answer.status < 300:
            return Follow("success", reason=f"HTTP {answer.status}")
        if answer.redirect:
            return Follow("failed", reason=f"HTTP {answer.status}: redirects are not followed"[:500])
        return Follow("failed", reason=f"HTTP {answer.status}")


# -- AI outbound call ------------------------------------------------------------------------------

CALL_OUTCOME_EVENTS = ("message_delivered", "message_failed", "message_skipped")


class CallScript(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tag_group: str = Field(min_length=1, max_length=100, description="A tag group's name.")
    template: str = Field(
        min_length=1, max_length=100, description="The call script (a call message template's key)."
    )


class AiCallConfig(NodeConfig):
    account: int = Field(description="The call channel account (its id) that places the call.")
    scripts: list[CallScript] = Field(
        default_factory=list,
        max_length=20,
        description="In order: the first whose tag group holds one of the customer's tags gives the script.",
    )
    default_template: str = Field(
        min_length=1, max_length=100, description="The script for a customer no tag group matches."
    )
    min_duration_seconds: int = Field(
        20, ge=0, le=3600, description="An answered call shorter than this leaves by “short_call”."
    )
    no_answer_seconds: int = Field(
        3600,
        ge=60,
        le=7 * 86400,
        description="Leave by “not_answered” when no call result has come within this time.",
    )


@node_type("ai_call")
class AiCall(NodeType):
    kind = "action"
    label = gettext_lazy("Start an AI call")
    description = gettext_lazy(
        "Calls the customer with the script of their tag group; follows answered, a short call, or "
        "not answered."
    )
    icon = "phone"
    config = AiCallConfig
    handles = ("answered", "short_call", "not_answered")

    def reference_problems(self, config: AiCallConfig) -> list[str]:
        problems = []
        account = ChannelAccount.objects.filter(pk=config.account).first()
        if account is None:
            problems.append(_("There is no channel account %(id)s.") % {"id": config.account})
        elif account.channel != Channel.CALL:
            problems.append(_("The account %(id)s does not place calls.") % {"id": config.account})
        keys = [config.default_template, *(script.template for script in config.scripts)]
        found = dict(MessageTemplate.objects.filter(key__in=keys).values_list("key", "channel"))
        for key in dict.fromkeys(keys):
            if key not in found:
                problems.append(_("There is no message template with the key “%(key)s”.") % {"key": key})
            elif found[key] != Channel.CALL:
                problems.append(_("The template “%(key)s” is not a call script.") % {"key": key})
        groups = set(TagGroup.objects.values_list("name", flat=True))
        for script in config.scripts:
            if script.tag_group not in groups:
                problems.append(_("There is no tag group “%(name)s”.") % {"name": script.tag_group})
        return problems

    @staticmethod
    def script_for(config: AiCallConfig, customer_id: int) -> str:
        held = set(
            CustomerTag.objects.filter(customer_id=customer_id, tag__group__isnull=False).values_list(
                "tag__group__name", flat=True
            )
        )
        for script in config.scripts:
            if script.tag_group in held:
                return script.template
        return config.default_template

    def enter(self, ctx: StepContext) -> Follow | Wait:
        config: AiCallConfig = ctx.config
        account = ctx.account(config.account)
        key = self.script_for(config, ctx.customer.pk)
        template = ctx.remembered(("template", key), lambda: MessageTemplate.objects.filter(key=key).first())
        if template is None:
            raise NodeFailed(_("The message template “%(key)s” no longer exists.") % {"key": key})
        enrollment = ctx.enrollment
        message, _created = message_enqueue(
            account=account,
            customer=ctx.customer,
            idempotency_key=ctx.step_key,
            template=template,
            event_properties=enrollment.context,
            origin="journey",
            journey_id=enrollment.journey_id,
            enrollment_id=enrollment.pk,
            node_id=ctx.node_id,
        )
        return self._outcome(ctx, message, until=ctx.now + dt.timedelta(seconds=config.no_answer_seconds))

    def resume(self, ctx: StepContext) -> Follow | Wait:
        message = message_for_key(idempotency_key=ctx.step_key)
        if message is None:
            raise NodeFailed(_("The call this step started is gone."))
        return self._outcome(ctx, message, until=wait_until(ctx, ctx.config.no_answer_seconds))

    @staticmethod
    def _outcome(ctx: StepContext, message: Message, *, until: dt.datetime) -> Follow | Wait:
        script = message.template.key if message.template else "-"
        if message.status in {Message.Status.FAILED, Message.Status.SKIPPED}:
            return Follow("not_answered", reason=f"call {message.pk} ({script}): {message.reason}"[:500])
        if message.status == Message.Status.DELIVERED:
            duration = call_duration(customer_id=ctx.customer.pk, message_id=message.pk)
            handle = "answered" if duration >= ctx.config.min_duration_seconds else "short_call"
            return Follow(handle, reason=f"call {message.pk} ({script}): {duration} s")
        if ctx.now >= until:
            return Follow("not_answered", reason=f"call {message.pk} ({script}): no result")
        return Wait(
            until=until, events=CALL_OUTCOME_EVENTS, match_property="account", match_value=message.account_id
        )
