"""Scores: points for what customers do ("+10 for each order over 500 yuan", "+1 a page view, at most
5 a day"), written to a ledger entry by entry, each lapsing after its rule's number of days (the
score's decay). The score is the sum of the entries that have not lapsed; rules read it
(``{"score": {"op": "gte", "value": 50}}``).

Each event earns points once per rule (a unique index says so), however often its customer is
looked at; only events stored after the rule was made count (rules do not rewrite history)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from cdp import json_codec
from cdp.models import Customer, Event
from cdp.services import audit_record
from cdp.sqlvalues import id_array, json_rows
from segments.evaluator import properties_match
from segments.models import RuleClock, ScoreEntry, ScoringRule
from segments.rules import EventRule, RuleError, rule_parse
from segments.services import known_event_names, unknown_name
from segments.signals import refresh_later

SCORING_LOCK = 0x6364_7002
# New events of a customer are found among those received this long ago at most: the customers a
# refresh looks at were touched just now; anything older was scored when it arrived.
LOOKBACK = dt.timedelta(days=2)
# Bounds for a rule's points and for points given by hand alike, and for when either lapses.
MAX_POINTS = 10_000
MAX_LAPSE_DAYS = 3660


def _zone():
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def scoring_rule_save(
    *,
    name: str,
    event: str,
    points: int,
    actor,
    where: list | None = None,
    cap: int | None = None,
    cap_period: str = ScoringRule.Period.DAY,
    expires_after_days: int | None = None,
    rule: ScoringRule | None = None,
) -> ScoringRule:
    """Creates (or changes) a scoring rule; ValidationError names each field that is wrong."""
    name, event, where = name.strip(), event.strip(), where or []
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = [_("Give the rule a name.")]
    if not event:
        errors["event"] = [_("Choose the event that earns the points.")]
    else:
        known = known_event_names()
        if event not in known:
            errors["event"] = [unknown_name("event", event, known)]
    try:
        rule_parse({"event": event or "-", "where": where})
    except RuleError as error:
        errors["where"] = [
            f"{problem['path'].replace('$.where', 'where')}: {problem['message']}"
            for problem in error.problems
        ]
    if not isinstance(points, int) or points == 0 or abs(points) > MAX_POINTS:
        errors["points"] = [_("Give a whole number of points from -10000 to 10000, not 0.")]
    if cap is not None and cap <= 0:
        errors["cap"] = [_("A cap is a positive number of points (or leave it empty).")]
    if cap_period not in ScoringRule.Period.values:
        errors["cap_period"] = [_("Choose day, week or month.")]
    if expires_after_days is not None and not 1 <= expires_after_days <= MAX_LAPSE_DAYS:
        errors["expires_after_days"] = [_("Points lapse after 1 to 3660 days (or leave it empty: never).")]
    if errors:
        raise ValidationError(errors)
    values = {
        "name": name,
        "event": event,
        "where": where,
        "points": points,
        "cap": cap,
        "cap_period": cap_period,
        "expires_after_days": expires_after_days,
    }
    if rule is None:
        latest = Event.objects.aggregate(latest=Max("pk"))["latest"] or 0
        rule = ScoringRule.objects.create(**values, created_by=actor, counts_after_event_id=latest)
        action = "scoring_rule.create"
    else:
        for field, value in values.items():
            setattr(rule, field, value)
        rule.save()
        action = "scoring_rule.change"
    audit_record(actor=actor, action=action, target=rule, details=values)
    return rule


def scoring_rule_pause(*, rule: ScoringRule, actor) -> ScoringRule:
    """Pauses a rule (or resumes it): paused, it awards nothing; what it awarded stays."""
    rule.active = not rule.active
    rule.save(update_fields=["active"])
    audit_record(
        actor=actor, action="scoring_rule.resume" if rule.active else "scoring_rule.pause", target=rule
    )
    return rule


def _period_start(moment: dt.datetime, period: str) -> dt.date:
    day = moment.astimezone(_zone()).date()
    if period == ScoringRule.Period.WEEK:
        return day - dt.timedelta(days=day.weekday())
    if period == ScoringRule.Period.MONTH:
        return day.replace(day=1)
    return day


@transaction.atomic
def scores_award(*, customer_ids: list[int], now: dt.datetime | None = None) -> set[int]:
    """Points for the events of these customers that no rule has scored yet; returns the customers
    whose score changed."""
    if not customer_ids:
        return set()
    now = now or timezone.now()
    rules = list(ScoringRule.objects.filter(active=True))
    if not rules:
        return set()
    with connection.cursor() as cursor:
        # One award at a time: two workers looking at the same customer must not both award.
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SCORING_LOCK])
    ids = id_array(set(customer_ids))
    today = timezone.localdate()
    entries: list[tuple] = []
    for rule in rules:
        filters = rule_parse({"event": rule.event, "where": rule.where})
        assert isinstance(filters, EventRule)
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT e.id, e.customer_id, e.timestamp, e.properties FROM cdp_event AS e
                WHERE e.customer_id = ANY(%s::bigint[]) AND e.name = %s AND e.id > %s
                  AND e.received_at >= %s
                  AND NOT EXISTS (SELECT 1 FROM segments_scoreentry AS s
                                  WHERE s.rule_id = %s AND s.event_id = e.id)
                ORDER BY e.timestamp, e.id
                """,
                [ids, rule.event, rule.counts_after_event_id, now - LOOKBACK, rule.pk],
            )
            # jsonb arrives as text through Django's connection
            events = [
                row
                for row in cursor.fetchall()
                if properties_match(json_codec.loads(row[3]), filters.where, today)
            ]
        entries += _rule_entries(rule, events, now)
    if not entries:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO segments_scoreentry (customer_id, rule_id, rule_name, event_id, event_name, points,
                                             happened_at, awarded_at, expires_at)
            SELECT customer_id, rule_id, rule_name, event_id, event_name, points, happened_at, %s,
                   expires_at
            FROM json_to_recordset(%s::json) AS row(
                customer_id bigint, rule_id bigint, rule_name text, event_id bigint, event_name text,
                points int, happened_at timestamptz, expires_at timestamptz)
            ON CONFLICT DO NOTHING
            """,
            [
                now,
                json_rows(
                    "customer_id rule_id rule_name event_id event_name points happened_at expires_at", entries
                ),
            ],
        )
    changed = {entry[0] for entry in entries}
    scores_recompute(customer_ids=changed, now=now)
    return changed


def _rule_entries(rule: ScoringRule, events: list[tuple], now: dt.datetime) -> list[tuple]:
    """The ledger entries one rule writes for these events, within its cap."""
    used: dict[tuple[int, dt.date], int] = {}
    if rule.cap and rule.points > 0 and events:
        earliest = min(_period_start(moment, rule.cap_period) for _id, _c, moment, _p in events)
        for customer_id, happened_at, points in ScoreEntry.objects.filter(
            rule=rule,
            customer_id__in={customer_id for _id, customer_id, _m, _p in events},
            happened_at__gte=dt.datetime.combine(earliest, dt.time(), tzinfo=_zone()),
        ).values_list("customer_id", "happened_at", "points"):
            key = (customer_id, _period_start(happened_at, rule.cap_period))
            used[key] = used.get(key, 0) + points
    entries = []
    for event_id, customer_id, happened_at, _properties in events:
        expires_at = (
            happened_at + dt.timedelta(days=rule.expires_after_days) if rule.expires_after_days else None
        )
        if expires_at is not None and expires_at <= now:
            continue  # an old event, arriving late: its points have lapsed already
        points = rule.points
        if rule.cap and points > 0:
            key = (customer_id, _period_start(happened_at, rule.cap_period))
            points = min(points, rule.cap - used.get(key, 0))
            if points <= 0:
                continue
            used[key] = used.get(key, 0) + points
        entries.append(
            (customer_id, rule.pk, rule.name, event_id, rule.event, points, happened_at, expires_at)
        )
    return entries


def scores_recompute(*, customer_ids, now: dt.datetime | None = None) -> None:
    """Each customer's score: the sum of the entries that have not lapsed by ``now``."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO segments_customerscore (customer_id, points, updated_at)
            SELECT c.id, coalesce((SELECT sum(s.points) FROM segments_scoreentry AS s
                                   WHERE s.customer_id = c.id
                                     AND (s.expires_at IS NULL OR s.expires_at > %s)), 0), %s
            FROM cdp_customer AS c WHERE c.id = ANY(%s::bigint[])
            ON CONFLICT (customer_id) DO UPDATE SET points = EXCLUDED.points, updated_at = EXCLUDED.updated_at
            """,
            [now, now, id_array(customer_ids)],
        )


def rule_clock() -> RuleClock:
    """The tick's progress (locked for this transaction); starts now, the first time."""
    clock = RuleClock.objects.select_for_update().first()
    if clock is None:
        clock = RuleClock.objects.create(expired_until=timezone.now(), edges_day=timezone.localdate())
    return clock


@transaction.atomic
def scores_expire(*, now: dt.datetime | None = None) -> set[int]:
    """Scores of the customers whose awards lapsed since the last tick (a range of the expiry
    index, not a scan), recomputed; returns those customers."""
    now = now or timezone.now()
    clock = rule_clock()
    customer_ids = set(
        ScoreEntry.objects.filter(expires_at__gt=clock.expired_until, expires_at__lte=now).values_list(
            "customer_id", flat=True
        )
    )
    if customer_ids:
        scores_recompute(customer_ids=customer_ids, now=now)
    clock.expired_until = now
    clock.save(update_fields=["expired_until"])
    return customer_ids


def _whole_number(raw, field: str, low: int, high: int, errors: dict) -> int | None:
    try:
        value = int(str(raw).strip())
    except (TypeError, ValueError):
        value = None
    if value is None or not low <= value <= high:
        errors[field] = _("Enter a whole number from %(low)s to %(high)s.") % {"low": low, "high": high}
    return value


@transaction.atomic
def score_adjust(*, customer: Customer, points, reason: str, lapse_days=None, actor) -> ScoreEntry:
    """Points a person gives or takes by hand ("met us at the trade fair": +20), with why. They count
    like a rule's points, lapse after ``lapse_days`` if given, and rules reading the score follow."""
    errors: dict[str, str] = {}
    points = _whole_number(points, "points", -MAX_POINTS, MAX_POINTS, errors)
    if "points" not in errors and points == 0:
        errors["points"] = _("Zero points change nothing: give or take at least one.")
    reason = (reason or "").strip()
    if not reason:
        errors["reason"] = _("Say why, so that colleagues understand the score.")
    elif len(reason) > 200:
        errors["reason"] = _("Keep the reason under 200 characters.")
    days = None
    if lapse_days not in (None, ""):
        days = _whole_number(lapse_days, "lapse_days", 1, MAX_LAPSE_DAYS, errors)
    if customer.merged_into_id:
        errors["customer"] = _("This profile was merged into another: adjust the score there.")
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    with connection.cursor() as cursor:  # in step with the awards, which recompute the same scores
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SCORING_LOCK])
    entry = ScoreEntry.objects.create(
        customer=customer,
        rule=None,
        rule_name="",
        event_id=None,
        event_name="",
        points=points,
        happened_at=now,
        awarded_at=now,
        expires_at=now + dt.timedelta(days=days) if days else None,
        adjusted_by=actor,
        reason=reason,
    )
    scores_recompute(customer_ids=[customer.pk], now=now)
    audit_record(
        actor=actor, action="score.adjust", target=customer, details={"points": points, "reason": reason}
    )
    refresh_later([customer.pk])
    return entry
