"""Admins' changes to the identity rules (Settings → Identity rules)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from cdp.identity import IDENTITY_TYPES, identity_type_of, rules_reload
from cdp.models import IdentityRule
from cdp.services import audit_record


def rules_list() -> list[dict]:
    overrides = {rule.type: rule for rule in IdentityRule.objects.all()}
    rows = []
    for name in IDENTITY_TYPES:
        current = identity_type_of(name)
        rule = overrides.get(name)
        rows.append(
            {
                "type": name,
                "priority": current.priority,
                "max_per_customer": current.max_per_customer,
                "blocked_values": ", ".join(rule.blocked_values) if rule else "",
                "sensitive": current.sensitive,
            }
        )
    return rows


@transaction.atomic
def rules_save(*, rows: dict[str, dict[str, str]], actor) -> None:
    """``rows`` maps a type to its posted fields; every problem is reported with its type and field."""
    errors: dict[str, list[str]] = {}
    cleaned = {}
    for name, fields in rows.items():
        if name not in IDENTITY_TYPES:
            continue
        try:
            priority = int(fields.get("priority", ""))
            if not 0 <= priority <= 1000:
                raise ValueError
        except ValueError:
            errors.setdefault(f"{name}.priority", []).append(_("Use a whole number from 0 to 1000."))
            continue
        raw_max = fields.get("max_per_customer", "").strip()
        try:
            max_per_customer = int(raw_max) if raw_max else None
            if max_per_customer is not None and max_per_customer < 1:
                raise ValueError
        except ValueError:
            errors.setdefault(f"{name}.max_per_customer", []).append(
                _("Use a whole number of at least 1, or leave it empty for no limit.")
            )
            continue
        blocked = [value.strip() for value in fields.get("blocked_values", "").split(",") if value.strip()]
        cleaned[name] = (priority, max_per_customer, blocked)
    if errors:
        raise ValidationError(errors)
    for name, (priority, max_per_customer, blocked) in cleaned.items():
        IdentityRule.objects.update_or_create(
            type=name,
            defaults={"priority": priority, "max_per_customer": max_per_customer, "blocked_values": blocked},
        )
    audit_record(actor=actor, action="identity.rules", target=actor, details={"types": sorted(cleaned)})
    transaction.on_commit(rules_reload)
