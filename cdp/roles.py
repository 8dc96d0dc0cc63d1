"""Customer roles (supplier, buyer, ...): configured by admins, shown on the profile with their metrics."""

from __future__ import annotations

import json
import re

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from cdp.models import Customer, CustomerRole
from cdp.services import audit_record

KEY = re.compile(r"^[a-z0-9_-]{1,40}$")


def customer_role_keys(customer: Customer) -> list[str]:
    raw = customer.traits.get("role")
    if raw is None:
        return []
    if isinstance(raw, list):
        values = [json_text(value).strip() for value in raw if value is not None]
    else:
        values = json_text(raw).replace(",", " ").split()
    return [value.lower() for value in values if value]


def json_text(value) -> str:
    """A JSON value as PostgreSQL's ``->>`` gives it (true, not True), as the role index reads it."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def customer_roles(*, customer: Customer) -> list[dict]:
    """The customer's roles, each with its key metrics read from the rollups."""
    keys = customer_role_keys(customer)
    if not keys:
        return []
    configured = {role.key: role for role in CustomerRole.objects.filter(key__in=keys)}
    stats = {stat.name: stat for stat in customer.event_stats.all()}
    roles = []
    for key in keys:
        role = configured.get(key)
        metrics = []
        for name in role.key_metrics if role else []:
            stat = stats.get(name)
            metrics.append(
                {
                    "name": name,
                    "count": stat.count if stat else 0,
                    "amount": stat.amount_sum if stat and stat.amount_sum else None,
                    "last_at": stat.last_at if stat else None,
                }
            )
        roles.append({"key": key, "label": role.label if role else key, "metrics": metrics})
    return roles


@transaction.atomic
def role_save(*, key: str, label: str, key_metrics: str, actor) -> CustomerRole:
    key, label = key.strip().lower(), label.strip()
    errors = {}
    if not KEY.match(key):
        errors["key"] = [
            _("Use lower-case letters, digits, - and _ (this is the value of the role attribute).")
        ]
    if not label:
        errors["label"] = [_("Give the role a name people read.")]
    if errors:
        raise ValidationError(errors)
    metrics = [name.strip() for name in key_metrics.split(",") if name.strip()][:12]
    role, _created = CustomerRole.objects.update_or_create(
        key=key, defaults={"label": label[:100], "key_metrics": metrics}
    )
    audit_record(actor=actor, action="customer_role.save", target=role, details={"metrics": metrics})
    return role


@transaction.atomic
def role_delete(*, role: CustomerRole, actor) -> None:
    audit_record(actor=actor, action="customer_role.delete", target=role)
    role.delete()
