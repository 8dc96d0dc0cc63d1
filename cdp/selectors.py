"""Reads of the customer-data core and the project shell."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from cdp.access import ROLE_CAPABILITIES
from cdp.celery import QUEUES
from cdp.celery import app as celery_app
from cdp.models import AuditEntry, BeatHeartbeat, Customer, CustomerScope, Organization, StaffProfile
from cdp.queues import backlog

User = get_user_model()


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    extra: dict

    def as_dict(self) -> dict:
        return {"ok": self.ok, "detail": self.detail, **self.extra}


def _database_check() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT version()")
            (version,) = cursor.fetchone()
        return Check("database", True, version.split(" on ")[0], {})
    except Exception as exc:  # any failure is the answer here, reported rather than raised
        return Check("database", False, f"{type(exc).__name__}: {exc}", {})


def _broker_check() -> Check:
    transport = celery_app.conf.broker_url.split(":", 1)[0]
    try:
        with celery_app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, timeout=2)
        return Check("broker", True, transport, {})
    except Exception as exc:
        return Check("broker", False, f"{transport}: {type(exc).__name__}: {exc}", {})


def _queues_check() -> Check:
    """Red when a queue's oldest task has waited longer than QUEUE_STALE_AFTER_SECONDS: its workers
    are missing or cannot keep up. Unknown (and green) on brokers that cannot tell (RabbitMQ)."""
    try:
        queues = backlog(QUEUES)
    except Exception as exc:
        return Check("queues", False, f"{type(exc).__name__}: {exc}", {"stale": []})
    if queues is None:
        return Check("queues", True, "the broker does not tell the backlog's age", {"stale": []})
    limit = settings.QUEUE_STALE_AFTER_SECONDS
    stale = [item.queue for item in queues if item.oldest_seconds is not None and item.oldest_seconds > limit]
    detail = f"oldest task over {limit}s in: {', '.join(stale)}" if stale else "flowing"
    return Check(
        "queues",
        not stale,
        detail,
        {
            "stale": stale,
            "backlog": {
                item.queue: {"waiting": item.waiting, "oldest_seconds": item.oldest_seconds}
                for item in queues
            },
        },
    )


def _beat_check() -> Check:
    try:
        heartbeat = BeatHeartbeat.objects.filter(pk=1).first()
    except Exception as exc:
        return Check("beat", False, f"{type(exc).__name__}: {exc}", {"age_seconds": None})
    if heartbeat is None:
        return Check("beat", False, "no heartbeat yet", {"age_seconds": None})
    age = (timezone.now() - heartbeat.beat_at).total_seconds()
    ok = age <= settings.BEAT_STALE_AFTER_SECONDS
    detail = "ticking" if ok else f"stale: over {settings.BEAT_STALE_AFTER_SECONDS}s"
    return Check(
        "beat", ok, detail, {"age_seconds": round(age, 1), "last_tick": heartbeat.beat_at.isoformat()}
    )


health_log = logging.getLogger("cdp.health")


def health_report(*, with_details: bool) -> dict:
    """Database, broker, the queues' backlog and beat. Details (versions, errors) only for operators;
    failures are logged."""
    checks = [_database_check(), _broker_check(), _queues_check(), _beat_check()]
    for check in checks:
        if not check.ok:
            health_log.warning("health check %s failed: %s", check.name, check.detail)
    return {
        "ok": all(check.ok for check in checks),
        "checks": {
            check.name: check.as_dict() if with_details else {"ok": check.ok, **check.extra}
            for check in checks
        },
    }


def organization_get() -> Organization | None:
    return Organization.objects.order_by("pk").first()


def user_role(user) -> str | None:
    """The user's role (a user holds one through the pages; the first by name if given several)."""
    names = sorted(group.name for group in user.groups.all())
    builtin = [name for name in names if name in ROLE_CAPABILITIES]
    return (builtin or names or [None])[0]


SCOPE_WIDTH = {CustomerScope.OWN: 0, CustomerScope.TEAM: 1, CustomerScope.ALL: 2}


def user_customer_scope(user) -> str:
    """The widest customer scope among the user's roles (a role without settings shows all, as the
    built-in roles always did). Kept on the user object: a socket keeps its user for its whole life,
    which is why a change of roles or teams closes the user's sockets."""
    cached = getattr(user, "_customer_scope", None)
    if cached is not None:
        return cached
    if user.is_superuser:
        scope = CustomerScope.ALL
    else:
        scopes = [
            scope or CustomerScope.ALL for scope in user.groups.values_list("staff_role__scope", flat=True)
        ]
        scope = max(scopes, key=SCOPE_WIDTH.__getitem__, default=CustomerScope.OWN)
    user._customer_scope = scope
    return scope


def user_team_id(user) -> int | None:
    return StaffProfile.objects.filter(user=user).values_list("team_id", flat=True).first()


def customers_visible_to(user, *, via: str = "") -> Q:
    """The filter that keeps the customers this user's roles let them see: their own (customers they
    own), their team's (owned by anyone in their team; their own when they have no team) or all.
    ``via`` names the customer relation on another model (``"customer"`` on messages, members, ...).
    Every list, page, API answer, export and live message about customers goes through it."""
    scope = user_customer_scope(user)
    if scope == CustomerScope.ALL:
        return Q()
    owner = f"{via}__owner_id" if via else "owner_id"
    team_id = user_team_id(user) if scope == CustomerScope.TEAM else None
    if team_id is None:
        return Q(**{owner: user.pk})
    team = StaffProfile.objects.filter(team_id=team_id).values("user_id")
    return Q(**{f"{owner}__in": team})


def customers_visible_among(user, customer_ids: list[int]) -> list[int]:
    """Those of ``customer_ids`` the user sees, in their order."""
    seen = set(
        Customer.objects.filter(customers_visible_to(user), pk__in=customer_ids).values_list("pk", flat=True)
    )
    return [customer_id for customer_id in customer_ids if customer_id in seen]


def customer_visible(user, customer) -> bool:
    if user_customer_scope(user) == CustomerScope.ALL:
        return True
    return Customer.objects.filter(customers_visible_to(user), pk=customer.pk).exists()


def user_list(*, query: str = "", role: str = "", status: str = "") -> QuerySet:
    users = (
        User.objects.prefetch_related("groups")
        .select_related("staff_profile__team")
        .order_by("-is_active", "username")
    )
    if query:
        users = users.filter(
            Q(username__icontains=query) | Q(email__icontains=query) | Q(first_name__icontains=query)
        )
    if role:
        users = users.filter(groups__name=role)
    if status == "active":
        users = users.filter(is_active=True)
    elif status == "inactive":
        users = users.filter(is_active=False)
    return users


def audit_list_for(*, target) -> QuerySet:
    return AuditEntry.objects.filter(
        target_type=target._meta.label_lower, target_id=str(target.pk)
    ).select_related("actor")


def audit_recent(*, limit: int = 50) -> QuerySet:
    return AuditEntry.objects.select_related("actor")[:limit]
