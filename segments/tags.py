"""Tags and tag groups: what staff, imports, the API and journeys put on customers. Every tag added
or removed is an event on the customer's timeline (``tag_added`` / ``tag_removed``), with rollups,
so rules and journeys can use it."""

from __future__ import annotations

import datetime as dt
import re

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from cdp.ingest import system_events_record
from cdp.models import Customer
from cdp.roles import customer_role_keys
from cdp.services import audit_record
from cdp.sqlvalues import id_array
from segments.compiler import evaluation_memory, rule_customer_ids_sql
from segments.graph import cycles_refuse, node_users, tag_node
from segments.models import CustomerTag, Tag, TagGroup
from segments.rules import KEY_PATTERN, rule_parse, rule_references
from segments.services import MembershipDiff, queue_dependents, rule_validate

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


def _name_and_color_problems(name: str, color: str) -> dict[str, list[str]]:
    errors = {}
    if not name:
        errors["name"] = [_("Give the tag a name.")]
    if color and not COLOR.match(color):
        errors["color"] = [_("Pick a colour such as #2563eb.")]
    return errors


@transaction.atomic
def tag_save(
    *, key: str, name: str, group: TagGroup | None = None, color: str = "", rule_data=None, actor
) -> Tag:
    """A new tag: static (set by people, imports, the API and journeys) or, with a rule, dynamic (held
    by whoever matches the rule, from now on)."""
    key, name, color = key.strip(), name.strip(), color.strip()
    errors = _name_and_color_problems(name, color)
    if not KEY_PATTERN.match(key):
        errors["key"] = [_("Use lower-case letters, digits, - and _ (up to 100), e.g. new-customer.")]
    elif Tag.objects.filter(key=key).exists():
        errors["key"] = [_("A tag with this key exists already.")]
    if errors:
        raise ValidationError(errors)
    if rule_data is not None:
        rule = rule_validate(rule_data)
        cycles_refuse(tag_node(key), rule_references(rule))
    tag = Tag.objects.create(
        key=key,
        name=name,
        group=group,
        color=color,
        kind=Tag.Kind.STATIC if rule_data is None else Tag.Kind.DYNAMIC,
        rule=rule_data,
    )
    audit_record(actor=actor, action="tag.create", target=tag, details={"key": key, "rule": rule_data})
    if rule_data is not None:
        dynamic_tag_refresh(tag=tag)
    return tag


@transaction.atomic
def tag_change(
    *, tag: Tag, name: str, color: str = "", group: TagGroup | None = None, rule_data=None, actor
) -> Tag:
    """Renames, recolours or regroups a tag (rules name it by key, so they are untouched); a
    dynamic tag's rule may change too, and its holders follow at once."""
    name, color = name.strip(), color.strip()
    errors = _name_and_color_problems(name, color)
    if errors:
        raise ValidationError(errors)
    tag = Tag.objects.select_for_update().get(pk=tag.pk)
    rule_changed = tag.kind == Tag.Kind.DYNAMIC and rule_data is not None and rule_data != tag.rule
    if rule_changed:
        cycles_refuse(tag_node(tag.key), rule_references(rule_validate(rule_data)))
        tag.rule = rule_data
    before = {"name": tag.name, "color": tag.color, "group": tag.group_id}
    tag.name, tag.color, tag.group = name, color, group
    tag.save()
    audit_record(actor=actor, action="tag.change", target=tag, details={"before": before, "rule": tag.rule})
    if rule_changed:
        dynamic_tag_refresh(tag=tag)
        transaction.on_commit(lambda: queue_dependents(tag_node(tag.key)), robust=True)
    return tag


def tag_users(tag: Tag) -> list[str]:
    """The rules that read this tag (it cannot be deleted or merged away while they do)."""
    return node_users(tag_node(tag.key))


def _refuse_if_used(tag: Tag) -> None:
    users = tag_users(tag)
    if users:
        raise ValidationError(
            {
                "tag": [
                    _("“%(tag)s” is used by %(users)s; change those first.")
                    % {"tag": tag.name, "users": ", ".join(users)}
                ]
            }
        )


@transaction.atomic
def tag_delete(*, tag: Tag, actor) -> int:
    """Deletes a tag nobody's rule reads; every holder gets a ``tag_removed`` event. Returns how
    many customers lost it."""
    tag = Tag.objects.select_for_update().get(pk=tag.pk)
    _refuse_if_used(tag)
    holders = sorted(CustomerTag.objects.filter(tag=tag).values_list("customer_id", flat=True))
    tag_events_record(tag, holders, "tag_removed", CustomerTag.Origin.STAFF)
    audit_record(
        actor=actor, action="tag.delete", target=tag, details={"key": tag.key, "holders": len(holders)}
    )
    tag.delete()
    return len(holders)


@transaction.atomic
def tags_merge(*, source: Tag, into: Tag, actor) -> int:
    """Folds ``source`` into ``into`` (two tags that mean the same): the holders of ``source`` get
    ``into`` (a ``tag_added`` event for each who did not hold it), then ``source`` is deleted.
    Returns how many customers newly hold ``into``."""
    if source.pk == into.pk:
        raise ValidationError({"into": [_("Choose another tag to merge into.")]})
    if Tag.Kind.DYNAMIC in (source.kind, into.kind):
        raise ValidationError(
            {"into": [_("Only static tags can be merged; change the rule of a dynamic tag instead.")]}
        )
    _refuse_if_used(source)
    holders = list(CustomerTag.objects.filter(tag=source).values_list("customer_id", flat=True))
    gained = customers_tag(customer_ids=holders, tag=into, actor=actor)
    tag_events_record(source, sorted(holders), "tag_removed", CustomerTag.Origin.STAFF)
    audit_record(
        actor=actor, action="tag.merge", target=into, details={"merged": source.key, "holders": len(holders)}
    )
    Tag.objects.filter(pk=source.pk).delete()
    return gained


def tag_events_record(
    tag: Tag, customer_ids: list[int], name: str, origin: str, *, rules_follow: bool = True
) -> None:
    """``tag_added`` / ``tag_removed`` on these customers' timelines."""
    now = timezone.now()
    system_events_record(
        rows=[(customer_id, name) for customer_id in customer_ids],
        kind="tag",
        properties={"tag": tag.key, "tag_name": tag.name, "origin": origin},
        moment=now,
        message_prefix=f"{name}-{tag.pk}-{int(now.timestamp() * 1000)}",
        rules_follow=rules_follow,
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
    tag_events_record(tag, new, "tag_added", origin)
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
    tag_events_record(tag, removed, "tag_removed", origin)
    return len(removed)


# Tagging every member of a segment can start tag-triggered journeys for thousands at once.
SEGMENT_TAGGING_REFUSED = gettext_lazy(
    "Only people who manage segments may tag every member of a segment; tag customers one by one "
    "or by a list."
)


@transaction.atomic
def segment_members_tag(*, segment, tag: Tag, actor, remove: bool = False) -> int:
    """Tags (or untags) every member of a segment at once, in the database; returns how many
    customers changed. Only static tags: a dynamic tag follows its rule."""
    if tag.kind != Tag.Kind.STATIC:
        raise ValidationError({"tag": [_("A dynamic tag follows its rule; it cannot be set by hand.")]})
    with connection.cursor() as cursor:
        if remove:
            cursor.execute(
                """
                DELETE FROM segments_customertag AS ct USING segments_segmentmember AS m
                WHERE ct.tag_id = %s AND m.segment_id = %s AND m.customer_id = ct.customer_id
                RETURNING ct.customer_id
                """,
                [tag.pk, segment.pk],
            )
        else:
            cursor.execute(
                """
                INSERT INTO segments_customertag (customer_id, tag_id, origin, added_at, added_by_id)
                SELECT m.customer_id, %s, %s, %s, %s FROM segments_segmentmember AS m WHERE m.segment_id = %s
                ON CONFLICT DO NOTHING
                RETURNING customer_id
                """,
                [tag.pk, CustomerTag.Origin.STAFF, timezone.now(), actor.pk if actor else None, segment.pk],
            )
        changed = sorted(row[0] for row in cursor.fetchall())
    tag_events_record(tag, changed, "tag_removed" if remove else "tag_added", CustomerTag.Origin.STAFF)
    audit_record(
        actor=actor,
        action="tag.bulk_remove" if remove else "tag.bulk_add",
        target=tag,
        details={"segment": segment.key, "customers": len(changed)},
    )
    return len(changed)


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


# --------------------------------------------------------------------------------------------------
# Dynamic tags: held by whoever matches the tag's rule, kept right like segments.


def dynamic_tag_apply(tag: Tag, matched: set[int], current: set[int]) -> MembershipDiff:
    """Among the customers looked at: who now matches gets the tag, who no longer does loses it."""
    entered, exited = sorted(matched - current), sorted(current - matched)
    now = timezone.now()
    with connection.cursor() as cursor:
        if exited:
            cursor.execute(
                "DELETE FROM segments_customertag WHERE tag_id = %s AND customer_id = ANY(%s::bigint[])",
                [tag.pk, id_array(exited)],
            )
        if entered:
            cursor.execute(
                "INSERT INTO segments_customertag (customer_id, tag_id, origin, added_at)"
                " SELECT unnest(%s::bigint[]), %s, %s, %s ON CONFLICT DO NOTHING",
                [id_array(entered), tag.pk, CustomerTag.Origin.RULE, now],
            )
    tag_events_record(tag, entered, "tag_added", CustomerTag.Origin.RULE, rules_follow=False)
    tag_events_record(tag, exited, "tag_removed", CustomerTag.Origin.RULE, rules_follow=False)
    return MembershipDiff(len(entered), len(exited))


def dynamic_tag_refresh(*, tag: Tag, today: dt.date | None = None) -> MembershipDiff:
    """The tag's rule over every customer, applied as a diff."""
    selected, params = rule_customer_ids_sql(rule_parse(tag.rule), today=today or timezone.localdate())
    evaluation_memory()
    with connection.cursor() as cursor:
        cursor.execute(selected, params)
        matched = {row[0] for row in cursor.fetchall()}
    current = set(CustomerTag.objects.filter(tag=tag).values_list("customer_id", flat=True))
    return dynamic_tag_apply(tag, matched, current)
