"""Tags and tag groups: what staff, imports, the API and journeys put on customers. Every tag added
or removed is an event on the customer's timeline (``tag_added`` / ``tag_removed``), with rollups,
so rules and journeys can use it."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.translation import gettext as _

from cdp.ingest import system_events_record
from cdp.models import Customer
from cdp.roles import customer_role_keys
from cdp.services import audit_record
from segments.models import CustomerTag, Tag, TagGroup
from segments.rules import KEY_PATTERN

COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


def tag_group_save(*, name: str, color: str = "#64748b", roles: list[str] | None = None, actor) -> TagGroup:
    name, color = name.strip(), color.strip() or "#64748b"
    errors = {}
    if not name:
        errors["name"] = [_("Give the group a name.")]
    elif TagGroup.objects.filter(name=name).exists():
        errors["name"] = [_("A group with this name exists already.")]
    if not COLOR.match(color):
        errors["color"] = [_("Pick a colour such as #2563eb.")]
    if errors:
        raise ValidationError(errors)
    group = TagGroup.objects.create(
        name=name, color=color, roles=sorted({r.strip().lower() for r in roles or [] if r.strip()})
    )
    audit_record(actor=actor, action="tag_group.create", target=group, details={"roles": group.roles})
    return group


def tag_save(*, key: str, name: str, group: TagGroup | None = None, color: str = "", actor) -> Tag:
    key, name, color = key.strip(), name.strip(), color.strip()
    errors = {}
    if not KEY_PATTERN.match(key):
        errors["key"] = [_("Use lower-case letters, digits, - and _ (up to 100), e.g. new-customer.")]
    elif Tag.objects.filter(key=key).exists():
        errors["key"] = [_("A tag with this key exists already.")]
    if not name:
        errors["name"] = [_("Give the tag a name.")]
    if color and not COLOR.match(color):
        errors["color"] = [_("Pick a colour such as #2563eb.")]
    if errors:
        raise ValidationError(errors)
    tag = Tag.objects.create(key=key, name=name, group=group, color=color)
    audit_record(actor=actor, action="tag.create", target=tag, details={"key": key})
    return tag


def _events(tag: Tag, customer_ids: list[int], name: str, origin: str) -> None:
    now = timezone.now()
    system_events_record(
        rows=[(customer_id, name) for customer_id in customer_ids],
        kind="tag",
        properties={"tag": tag.key, "tag_name": tag.name, "origin": origin},
        moment=now,
        message_prefix=f"{name}-{tag.pk}-{int(now.timestamp() * 1000)}",
    )


@transaction.atomic
def customers_tag(*, customer_ids: list[int], tag: Tag, actor, origin: str = CustomerTag.Origin.STAFF) -> int:
    """Puts the tag on these customers (those who hold it already are left alone); returns how many
    got it now."""
    holders = set(
        CustomerTag.objects.filter(tag=tag, customer_id__in=customer_ids).values_list(
            "customer_id", flat=True
        )
    )
    new = sorted(set(customer_ids) - holders)
    CustomerTag.objects.bulk_create(
        [CustomerTag(customer_id=customer_id, tag=tag, origin=origin, added_by=actor) for customer_id in new],
        ignore_conflicts=True,
    )
    _events(tag, new, "tag_added", origin)
    return len(new)


@transaction.atomic
def customers_untag(
    *, customer_ids: list[int], tag: Tag, actor, origin: str = CustomerTag.Origin.STAFF
) -> int:
    removed = sorted(
        CustomerTag.objects.filter(tag=tag, customer_id__in=customer_ids).values_list(
            "customer_id", flat=True
        )
    )
    CustomerTag.objects.filter(tag=tag, customer_id__in=removed).delete()
    _events(tag, removed, "tag_removed", origin)
    return len(removed)


def customer_tag_groups(*, customer: Customer) -> list[dict]:
    """The customer's tags by group, showing only the groups meant for the customer's roles (a
    group without roles is for everyone)."""
    roles = set(customer_role_keys(customer))
    groups: dict[int | None, dict] = {}
    held = CustomerTag.objects.filter(customer=customer).select_related("tag__group").order_by("tag__name")
    for holding in held:
        group = holding.tag.group
        if group is not None and group.roles and not roles & set(group.roles):
            continue
        entry = groups.setdefault(group.pk if group else None, {"group": group, "tags": []})
        entry["tags"].append(holding.tag)
    return sorted(
        groups.values(),
        key=lambda entry: (entry["group"] is None, entry["group"] and entry["group"].position),
    )


def tags_overview() -> list[dict]:
    """Every group with its tags and how many customers hold each (the tags page)."""
    tags = Tag.objects.select_related("group").annotate(holder_count=Count("holders")).order_by("name")
    groups: dict[int | None, dict] = {
        group.pk: {"group": group, "tags": []} for group in TagGroup.objects.all()
    }
    for tag in tags:
        groups.setdefault(tag.group_id, {"group": tag.group, "tags": []})["tags"].append(tag)
    return list(groups.values())
