"""Action nodes: sends (with delivered / failed / no-response handles, the channel fallback), tags,
traits and score points."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connection
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from pydantic import Field, field_validator

from cdp import json_codec
from cdp.ingest import system_events_record
from connectors.models import ChannelAccount, Message, MessageTemplate
from connectors.selectors import messages_for_keys
from connectors.services import Outgoing, messages_enqueue_batch
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
from journeys.policy import HOLD, SEND, contact_decide, decisions_log
from segments.graph import tag_node
from segments.models import CustomerTag, ScoreEntry, Tag
from segments.scoring import scores_recompute
from segments.tags import customers_tag, customers_untag

# -- send ------------------------------------------------------------------------------------------

MESSAGE_OUTCOME_EVENTS = ("message_delivered", "message_failed", "message_skipped")
FAILED_STATUSES = {Message.Status.FAILED, Message.Status.SKIPPED}


class SendConfig(NodeConfig):
    account: int = Field(description="The channel account (its id) the message goes out through.")
    template: str = Field(min_length=1, max_length=100, description="The message template's key.")
    no_response_seconds: int = Field(
        86400,
        ge=60,
        le=30 * 86400,
        description="Leave by “no_response” when neither delivery nor failure is reported within this time.",
    )


@node_type("send")
class Send(NodeType):
    kind = "action"
    label = gettext_lazy("Send a message")
    description = gettext_lazy(
        "Sends a template on a channel account; a failure can lead to another channel (fallback)."
    )
    icon = "send"
    config = SendConfig
    handles = ("delivered", "failed", "no_response")

    def reference_problems(self, config: SendConfig) -> list[str]:
        problems = []
        account = ChannelAccount.objects.filter(pk=config.account).first()
        if account is None:
            problems.append(_("There is no channel account %(id)s.") % {"id": config.account})
        template = MessageTemplate.objects.filter(key=config.template).first()
        if template is None:
            problems.append(
                _("There is no message template with the key “%(key)s”.") % {"key": config.template}
            )
        if account is not None and template is not None and template.channel != account.channel:
            problems.append(
                _("The template “%(key)s” is for another channel than the account.")
                % {"key": config.template}
            )
        return problems

    def _account_and_template(self, ctx: StepContext) -> tuple[ChannelAccount, MessageTemplate]:
        config: SendConfig = ctx.config
        account = ctx.account(config.account)
        template = ctx.remembered(
            ("template", config.template), lambda: MessageTemplate.objects.filter(key=config.template).first()
        )
        if template is None:
            raise NodeFailed(_("The message template “%(key)s” no longer exists.") % {"key": config.template})
        return account, template

    def enter(self, ctx: StepContext) -> Follow | Wait:
        return self.enter_many([ctx])[0]

    def enter_many(self, ctxs: list[StepContext]) -> list[Follow | Wait | NodeFailed]:
        """The batch's customers at this send: the contact policy decides for all of them at once
        (a hold waits until the quiet hours end, a skip leaves by "failed"), then the messages of those
        it allows are written in one statement, in the steps' transaction, each with its step's key
        (a replay finds the same message)."""
        first = ctxs[0]
        config: SendConfig = first.config
        try:
            account, template = self._account_and_template(first)
        except NodeFailed as failed:
            return [failed] * len(ctxs)
        decisions = contact_decide(
            channel=account.channel, customers=[ctx.customer for ctx in ctxs], now=first.now
        )
        decisions_log(
            decided=[(ctx.customer.pk, decision) for ctx, decision in zip(ctxs, decisions, strict=True)],
            channel=account.channel,
            journey_id=first.enrollment.journey_id,
            node_id=first.node_id,
            now=first.now,
        )
        allowed = [ctx for ctx, decision in zip(ctxs, decisions, strict=True) if decision.action == SEND]
        enqueued = (
            messages_enqueue_batch(
                account=account,
                template=template,
                items=[
                    Outgoing(
                        idempotency_key=ctx.step_key,
                        customer=ctx.customer,
                        event_properties=ctx.enrollment.context,
                        journey_id=ctx.enrollment.journey_id,
                        enrollment_id=ctx.enrollment.pk,
                    )
                    for ctx in allowed
                ],
                origin="journey",
                node_id=first.node_id,
            )
            if allowed
            else {}
        )
        until = first.now + dt.timedelta(seconds=config.no_response_seconds)
        results: list[Follow | Wait | NodeFailed] = []
        for ctx, decision in zip(ctxs, decisions, strict=True):
            if decision.action == HOLD:
                # No events: the send's own waits are on the account ("held" is told by that).
                results.append(Wait(until=decision.until, reason=f"contact policy: {decision.reason}"))
            elif decision.action != SEND:
                results.append(Follow("failed", reason=f"contact policy: {decision.reason}"))
            else:
                results.append(
                    self._outcome(enqueued[ctx.step_key], account_id=account.pk, until=until, now=ctx.now)
                )
        return results

    def resume(self, ctx: StepContext) -> Follow | Wait:
        return self.resume_many([ctx])[0]

    def resume_many(self, ctxs: list[StepContext]) -> list[Follow | Wait | NodeFailed]:
        messages = messages_for_keys(idempotency_keys=[ctx.step_key for ctx in ctxs])
        # Held by the contact policy (their wait is not on an account): they try to send again now.
        held = [ctx for ctx in ctxs if ctx.step_key not in messages and not ctx.waiting_match.get("property")]
        released = dict(zip((id(ctx) for ctx in held), self.enter_many(held), strict=True)) if held else {}
        results: list[Follow | Wait | NodeFailed] = []
        for ctx in ctxs:
            if id(ctx) in released:
                results.append(released[id(ctx)])
                continue
            message = messages.get(ctx.step_key)
            if message is None:
                results.append(NodeFailed(_("The message this step sent is gone.")))
                continue
            until = wait_until(ctx, ctx.config.no_response_seconds)
            results.append(self._outcome(message, account_id=message.account_id, until=until, now=ctx.now))
        return results

    @staticmethod
    def _outcome(message, *, account_id: int, until: dt.datetime, now: dt.datetime) -> Follow | Wait:
        """``message``: a Message, or what the outbox answered for one (id, status, reason, delivered_at)."""
        if message.status in FAILED_STATUSES:
            return Follow("failed", reason=f"message {message.id}: {message.reason}"[:500])
        if message.status == Message.Status.DELIVERED or message.delivered_at is not None:
            return Follow("delivered", reason=f"message {message.id}")
        if now >= until:
            return Follow("no_response", reason=f"message {message.id} is {message.status}")
        # The dispatcher's outcome events name the account but not the message (receipts name both):
        # any outcome on this account wakes the step, which then reads its own message's status.
        return Wait(
            until=until, events=MESSAGE_OUTCOME_EVENTS, match_property="account", match_value=account_id
        )


# -- tags ------------------------------------------------------------------------------------------


class TagConfig(NodeConfig):
    tag: str = Field(min_length=1, max_length=100, description="The tag's key.")


class _TagNode(NodeType):
    kind = "action"
    config = TagConfig

    def reference_problems(self, config: TagConfig) -> list[str]:
        tag = Tag.objects.filter(key=config.tag).first()
        if tag is None:
            return [_("There is no tag with the key “%(key)s”.") % {"key": config.tag}]
        if tag.kind == Tag.Kind.DYNAMIC:
            return [
                _("The tag “%(key)s” is given by its rule; a journey cannot set it.") % {"key": config.tag}
            ]
        return []

    def references(self, config: TagConfig) -> set[str]:
        return {tag_node(config.tag)}

    def _tag(self, ctx: StepContext) -> Tag:
        config: TagConfig = ctx.config
        tag = ctx.remembered(("tag", config.tag), lambda: Tag.objects.filter(key=config.tag).first())
        if tag is None:
            raise NodeFailed(_("The tag “%(key)s” no longer exists.") % {"key": config.tag})
        return tag


@node_type("add_tag")
class AddTag(_TagNode):
    label = gettext_lazy("Add a tag")
    description = gettext_lazy("Gives the customer a tag.")
    icon = "tag"

    def enter(self, ctx: StepContext) -> Follow:
        customers_tag(
            customer_ids=[ctx.customer.pk],
            tag=self._tag(ctx),
            actor=None,
            origin=CustomerTag.Origin.JOURNEY,
        )
        return Follow(DEFAULT_HANDLE)


@node_type("remove_tag")
class RemoveTag(_TagNode):
    label = gettext_lazy("Remove a tag")
    description = gettext_lazy("Takes a tag away from the customer.")
    icon = "tag-off"

    def enter(self, ctx: StepContext) -> Follow:
        customers_untag(
            customer_ids=[ctx.customer.pk],
            tag=self._tag(ctx),
            actor=None,
            origin=CustomerTag.Origin.JOURNEY,
        )
        return Follow(DEFAULT_HANDLE)


# -- traits ----------------------------------------------------------------------------------------


class SetTraitConfig(NodeConfig):
    trait: str = Field(min_length=1, max_length=200, description="The trait's name.")
    value: Any = Field(description="A text, a number or true/false.")

    @field_validator("value")
    @classmethod
    def _scalar(cls, value):
        if not isinstance(value, (str, int, float, bool)):
            raise ValueError("a trait is set to a text, a number or true/false")
        return value


@node_type("set_trait")
class SetTrait(NodeType):
    kind = "action"
    label = gettext_lazy("Set a trait")
    description = gettext_lazy("Sets an attribute on the customer's profile.")
    icon = "pencil"
    config = SetTraitConfig

    def enter(self, ctx: StepContext) -> Follow:
        config: SetTraitConfig = ctx.config
        with connection.cursor() as cursor:
            # Stamped like an ingested trait, so a later identify still wins over an older journey step.
            cursor.execute(
                """
                UPDATE cdp_customer SET traits = traits || jsonb_build_object(%s::text, %s::jsonb),
                    traits_updated_at = traits_updated_at || jsonb_build_object(%s::text, %s::text),
                    updated_at = %s
                WHERE id = %s
                """,
                [
                    config.trait,
                    json_codec.dumps_text(config.value),
                    config.trait,
                    ctx.now.isoformat(),
                    ctx.now,
                    ctx.customer.pk,
                ],
            )
        system_events_record(
            rows=[(ctx.customer.pk, "trait_set")],
            kind="track",
            properties={"trait": config.trait, "value": config.value, "origin": "journey"},
            moment=ctx.now,
            message_prefix=f"trait-set-{ctx.step_key}",
        )
        return Follow(DEFAULT_HANDLE)


# -- score -----------------------------------------------------------------------------------------


class AddScoreConfig(NodeConfig):
    points: int = Field(ge=-10_000, le=10_000, description="Points to add (negative to take away).")
    expires_after_days: int | None = Field(None, ge=1, le=3660, description="When the points lapse.")


@node_type("add_score")
class AddScore(NodeType):
    kind = "action"
    label = gettext_lazy("Add score points")
    description = gettext_lazy("Adds points to the customer's score, in its ledger.")
    icon = "star"
    config = AddScoreConfig

    def enter(self, ctx: StepContext) -> Follow:
        config: AddScoreConfig = ctx.config
        expires = (
            ctx.now + dt.timedelta(days=config.expires_after_days) if config.expires_after_days else None
        )
        ScoreEntry.objects.create(
            customer_id=ctx.customer.pk,
            rule=None,
            rule_name=str(_("Journey %(journey)s, step %(node)s"))
            % {"journey": ctx.enrollment.journey_id, "node": ctx.node_id},
            event_id=None,
            event_name="journey_step",
            points=config.points,
            happened_at=ctx.now,
            awarded_at=ctx.now,
            expires_at=expires,
        )
        scores_recompute(customer_ids=[ctx.customer.pk], now=ctx.now)
        return Follow(DEFAULT_HANDLE)
