"""The contact policy of journey sends: per channel, how many messages a customer may get in a day
and in a week, and the quiet hours (in the customer's own time zone) when a message waits until they
end or is skipped; consent is always checked. The send node asks for a whole batch at once; every
hold and skip is written to the customer's timeline with its reason (``contact_policy_held`` /
``contact_policy_skipped``).

Caps count the customer's messages on the channel of the last 24 hours and the last 7 days that went
or are going out (not skipped or failed), whatever sent them. When journeys compete for what a cap
leaves, the engine runs a batch's sends of higher-priority journeys first (``Journey.priority``), so
they are counted first.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from cdp.ingest import system_events_record
from cdp.services import audit_record
from cdp.sqlvalues import id_array
from connectors.protocol import Channel
from journeys.models import ChannelPolicy, Journey

SEND, HOLD, SKIP = "send", "hold", "skip"
HELD_EVENT, SKIPPED_EVENT = "contact_policy_held", "contact_policy_skipped"
# The channel kinds a policy can be set for (a webhook reaches a system, not a person).
POLICY_CHANNELS = [channel for channel, consent in Channel.CONSENT.items() if consent]

REASON_UNSUBSCRIBED = gettext_noop("The customer unsubscribed from this channel.")
REASON_QUIET_HOLD = gettext_noop("Quiet hours: held until they end.")
REASON_QUIET_SKIP = gettext_noop("Quiet hours: skipped.")
REASON_DAY_CAP = gettext_noop("Reached the cap of %(count)s messages a day on this channel.")
REASON_WEEK_CAP = gettext_noop("Reached the cap of %(count)s messages a week on this channel.")


@dataclass(frozen=True)
class Decision:
    action: str  # send, hold or skip
    # Untranslated, with its parameters apart: the timeline shows it in the reader's language.
    message: str = ""
    until: dt.datetime | None = None  # for a hold: when the customer may be messaged again
    params: tuple[tuple[str, object], ...] = ()

    @property
    def reason(self) -> str:
        """In English, for the step's record."""
        return self.message % dict(self.params) if self.params else self.message


ALLOWED = Decision(SEND)


# -- reading and saving the policy -----------------------------------------------------------------


def channel_policies() -> dict[str, ChannelPolicy]:
    """Every policy channel's policy (unsaved, with no limits, where none was set)."""
    saved = {policy.channel: policy for policy in ChannelPolicy.objects.all()}
    return {channel: saved.get(channel) or ChannelPolicy(channel=channel) for channel in POLICY_CHANNELS}


def _cap(value, field: str, problems: dict) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number < 1 or number > 1000:
        problems[field] = [_("Give a whole number from 1 to 1000, or leave it empty for no cap.")]
        return None
    return number


def _time(value, field: str, problems: dict) -> dt.time | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.time):
        return value
    try:
        return dt.time.fromisoformat(str(value))
    except ValueError:
        problems[field] = [_("Give a time of day as HH:MM.")]
        return None


@transaction.atomic
def channel_policy_save(
    *,
    channel: str,
    per_day=None,
    per_week=None,
    quiet_start=None,
    quiet_end=None,
    quiet_action: str = ChannelPolicy.QuietAction.HOLD,
    actor,
) -> ChannelPolicy:
    """Sets a channel's caps and quiet hours; raises ValidationError by field."""
    if channel not in POLICY_CHANNELS:
        raise ValidationError({"channel": [_("Unknown channel kind “%(kind)s”.") % {"kind": channel}]})
    problems: dict[str, list[str]] = {}
    day, week = _cap(per_day, "per_day", problems), _cap(per_week, "per_week", problems)
    start, end = _time(quiet_start, "quiet_start", problems), _time(quiet_end, "quiet_end", problems)
    if day and week and week < day:
        problems["per_week"] = [_("A week's cap cannot be lower than a day's.")]
    if (start is None) != (end is None) or (start is not None and start == end):
        problems["quiet_end"] = [_("Give both ends of the quiet hours, at different times, or neither.")]
    if quiet_action not in ChannelPolicy.QuietAction.values:
        problems["quiet_action"] = [_("Choose hold or skip.")]
    if problems:
        raise ValidationError(problems)
    policy, _created = ChannelPolicy.objects.update_or_create(
        channel=channel,
        defaults={
            "per_day": day,
            "per_week": week,
            "quiet_start": start,
            "quiet_end": end,
            "quiet_action": quiet_action,
        },
    )
    audit_record(actor=actor, action="contact_policy.save", target=policy, details={"channel": channel})
    return policy


@transaction.atomic
def journey_priorities_save(*, priorities: dict[int, int], actor) -> None:
    """Sets journeys' priorities (higher goes first when sends compete for a cap)."""
    problems = {}
    for journey_id, priority in priorities.items():
        if not isinstance(priority, int) or not -100 <= priority <= 100:
            problems[f"priority.{journey_id}"] = [_("Give a whole number from -100 to 100.")]
    if problems:
        raise ValidationError(problems)
    for journey in Journey.objects.filter(pk__in=priorities):
        if journey.priority != priorities[journey.pk]:
            Journey.objects.filter(pk=journey.pk).update(priority=priorities[journey.pk])
            audit_record(
                actor=actor,
                action="journey.priority",
                target=journey,
                details={"priority": priorities[journey.pk]},
            )


@transaction.atomic
def contact_policy_save(*, channels: dict[str, dict], priorities: dict[int, int], actor) -> None:
    """The settings page's form: every channel's policy and the journeys' priorities, all or nothing;
    raises ValidationError keyed ``<channel>.<field>`` and ``priority.<journey id>``."""
    problems: dict[str, list[str]] = {}
    for channel, fields in channels.items():
        try:
            with transaction.atomic():
                channel_policy_save(channel=channel, actor=actor, **fields)
        except ValidationError as error:
            problems.update({f"{channel}.{field}": found for field, found in error.message_dict.items()})
    try:
        journey_priorities_save(priorities=priorities, actor=actor)
    except ValidationError as error:
        problems.update(error.message_dict)
    if problems:
        raise ValidationError(problems)


# -- deciding --------------------------------------------------------------------------------------


def quiet_until(policy: ChannelPolicy, customer, now: dt.datetime) -> dt.datetime | None:
    """When the quiet hours the customer is in now end (None: they are not in quiet hours)."""
    if policy.quiet_start is None or policy.quiet_end is None:
        return None
    # Imported here: the send node imports this module while the node registry is loading.
    from journeys.nodes.flow import customer_zone

    zone = customer_zone(customer)
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    start, end = policy.quiet_start, policy.quiet_end
    inside = start <= clock < end if start < end else (clock >= start or clock < end)
    if not inside:
        return None
    ends = dt.datetime.combine(local.date(), end, tzinfo=zone)
    if ends <= local:
        ends = dt.datetime.combine(local.date() + dt.timedelta(days=1), end, tzinfo=zone)
    return ends.astimezone(dt.UTC)


def _unsubscribed(customer_ids: list[int], consent_channel: str) -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT customer_id FROM cdp_consent"
            " WHERE customer_id = ANY(%s::bigint[]) AND channel = %s AND status = 'unsubscribed'",
            [id_array(customer_ids), consent_channel],
        )
        return {row[0] for row in cursor.fetchall()}


def _sent_counts(customer_ids: list[int], channel: str, now: dt.datetime) -> dict[int, tuple[int, int]]:
    """Per customer: messages on the channel in the last 24 hours and in the last 7 days."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT customer_id, count(*) FILTER (WHERE created_at >= %s), count(*)
            FROM connectors_message
            WHERE customer_id = ANY(%s::bigint[]) AND channel = %s AND created_at >= %s
              AND status NOT IN ('skipped', 'failed')
            GROUP BY customer_id
            """,
            [now - dt.timedelta(days=1), id_array(customer_ids), channel, now - dt.timedelta(days=7)],
        )
        return {customer_id: (day, week) for customer_id, day, week in cursor.fetchall()}


def _decide(customer, policy, refused: set[int], counts: dict, now: dt.datetime) -> Decision:
    if customer.pk in refused:
        return Decision(SKIP, REASON_UNSUBSCRIBED)
    if policy is None:
        return ALLOWED
    until = quiet_until(policy, customer, now)
    if until is not None:
        if policy.quiet_action == ChannelPolicy.QuietAction.HOLD:
            return Decision(HOLD, REASON_QUIET_HOLD, until)
        return Decision(SKIP, REASON_QUIET_SKIP)
    day, week = counts.get(customer.pk, (0, 0))
    if policy.per_day and day >= policy.per_day:
        return Decision(SKIP, REASON_DAY_CAP, params=(("count", policy.per_day),))
    if policy.per_week and week >= policy.per_week:
        return Decision(SKIP, REASON_WEEK_CAP, params=(("count", policy.per_week),))
    # The same customer twice in one call (two entries by key): the first send counts for the second.
    counts[customer.pk] = (day + 1, week + 1)
    return ALLOWED


def contact_decide(*, channel: str, customers: list, now: dt.datetime) -> list[Decision]:
    """Whether each customer may get a message on the channel now (in the order given): send, hold
    (until when) or skip, with the reason. Consent first, then quiet hours, then the caps."""
    policy = ChannelPolicy.objects.filter(channel=channel).first()
    ids = [customer.pk for customer in customers]
    consent_channel = Channel.CONSENT.get(channel)
    refused = _unsubscribed(ids, consent_channel) if consent_channel and ids else set()
    capped = policy is not None and (policy.per_day or policy.per_week)
    counts = _sent_counts(ids, channel, now) if capped and ids else {}
    return [_decide(customer, policy, refused, counts, now) for customer in customers]


def decisions_log(
    *, decided: list[tuple[int, Decision]], channel: str, journey_id: int, node_id: str, now: dt.datetime
) -> None:
    """Each hold and skip as an event on the customer's timeline, with its reason."""
    groups: dict[tuple[str, str, tuple, dt.datetime | None], list[int]] = {}
    for customer_id, decision in decided:
        if decision.action != SEND:
            name = HELD_EVENT if decision.action == HOLD else SKIPPED_EVENT
            key = (name, decision.message, decision.params, decision.until)
            groups.setdefault(key, []).append(customer_id)
    for index, ((name, reason, params, until), customer_ids) in enumerate(groups.items()):
        system_events_record(
            rows=[(customer_id, name) for customer_id in customer_ids],
            kind="track",
            properties={
                "channel": channel,
                "reason": reason,
                **({"reason_params": dict(params)} if params else {}),
                "until": until.isoformat() if until else None,
                "journey": journey_id,
                "node": node_id,
                "origin": "journey",
            },
            moment=now,
            message_prefix=f"{name}-{journey_id}-{node_id}-{now.timestamp():.6f}-{index}",
        )
