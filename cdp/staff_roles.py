"""Staff roles that admins manage: create (from a built-in role as template), rename, delete, tick
capabilities, choose the customer scope; and teams, which the "team" scope reads.

A role is a Django group holding capability permissions (``cdp.access``) plus a ``StaffRole`` row
with its scope. The four built-in roles keep their names (each page shows them in its language), can
be edited and never deleted; the Admin role keeps ``manage_users``. No change may leave the product
without an active user whose role lets them manage users.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from cdp.access import CAPABILITIES, ROLE_ADMIN, ROLE_CAPABILITIES, ROLE_DESCRIPTIONS, ROLE_LABELS
from cdp.models import CustomerScope, StaffProfile, StaffRole, Team
from cdp.realtime import notify_user
from cdp.services import audit_record, sessions_end_quietly

User = get_user_model()

MANAGE_USERS = "manage_users"
# One lock for every change that could take away the last user manager: two admins demoting each
# other at the same moment are serialised, and the second sees the first's change.
MANAGERS_LOCK = 0x0C0F_0016


def role_label(name: str | None) -> str:
    """A role's name as people read it: built-in roles in the reader's language."""
    return str(ROLE_LABELS.get(name, name or "—"))


def role_is_builtin(group: Group) -> bool:
    return group.name in ROLE_CAPABILITIES


def role_scope(group: Group) -> str:
    staff_role = StaffRole.objects.filter(group=group).first()
    return staff_role.scope if staff_role else CustomerScope.ALL


@dataclass(frozen=True)
class RoleRow:
    group: Group
    label: str
    description: str
    builtin: bool
    scope: str
    capabilities: frozenset[str]
    members: int


def _in_order(groups) -> list[Group]:
    """The built-in roles in their usual order, then the others by name."""
    order = list(ROLE_CAPABILITIES)
    return sorted(
        groups,
        key=lambda group: (0, order.index(group.name), "") if group.name in order else (1, 0, group.name),
    )


def roles_overview() -> list[RoleRow]:
    """Every role for the matrix, with its capabilities, scope and how many active users hold it."""
    groups = Group.objects.prefetch_related("permissions__content_type").select_related("staff_role")
    members = dict(
        Group.objects.annotate(active=Count("user", filter=Q(user__is_active=True))).values_list(
            "pk", "active"
        )
    )
    rows = []
    for group in _in_order(groups):
        staff_role = getattr(group, "staff_role", None)
        builtin = role_is_builtin(group)
        rows.append(
            RoleRow(
                group=group,
                label=role_label(group.name),
                description=str(ROLE_DESCRIPTIONS[group.name])
                if builtin
                else (staff_role.description if staff_role else ""),
                builtin=builtin,
                scope=staff_role.scope if staff_role else CustomerScope.ALL,
                capabilities=frozenset(
                    permission.codename
                    for permission in group.permissions.all()
                    if permission.content_type.app_label == "cdp" and permission.codename in CAPABILITIES
                ),
                members=members.get(group.pk, 0),
            )
        )
    return rows


def role_choices() -> list[tuple[str, str]]:
    return [(group.name, role_label(group.name)) for group in _in_order(Group.objects.all())]


def _capability_permissions(codenames) -> list[Permission]:
    return list(Permission.objects.filter(content_type__app_label="cdp", codename__in=sorted(codenames)))


def _managers():
    return User.objects.filter(
        is_active=True,
        groups__permissions__codename=MANAGE_USERS,
        groups__permissions__content_type__app_label="cdp",
    )


LAST_ADMIN = gettext_noop("This is the last active admin; make someone else admin first.")
LAST_MANAGER = gettext_noop(
    "No active user would be left who can manage users; give that capability to someone else first."
)


@contextmanager
def managers_kept(*, field: str | None = None, message: str = LAST_MANAGER):
    """Wraps a change (inside its transaction) that could take away the last active user whose role
    lets them manage users, and refuses it, rolling it back, if it would. One lock serialises such
    changes, so two admins demoting each other at the same moment cannot both succeed."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [MANAGERS_LOCK])
    had_managers = _managers().exists()
    yield
    if had_managers and not _managers().exists():
        raise ValidationError({field: _(message)} if field else _(message))


def _clean_name(name: str, *, excluding: Group | None = None) -> str:
    name = " ".join(name.split())
    if not name:
        raise ValidationError({"name": _("Give the role a name.")})
    if len(name) > 150:
        raise ValidationError({"name": _("Keep the name under 150 characters.")})
    taken = Group.objects.filter(name__iexact=name)
    builtin_label = any(name.casefold() == str(label).casefold() for label in ROLE_LABELS.values())
    if excluding is not None:
        taken = taken.exclude(pk=excluding.pk)
    if taken.exists() or name in ROLE_CAPABILITIES or builtin_label:
        raise ValidationError({"name": _("A role named “%(name)s” already exists.") % {"name": name}})
    return name


def _clean_scope(scope: str) -> str:
    if scope not in CustomerScope.values:
        raise ValidationError(
            {
                "scope": _("Choose which customers the role sees: %(scopes)s.")
                % {"scopes": ", ".join(CustomerScope.values)}
            }
        )
    return scope


def _clean_capabilities(capabilities) -> set[str]:
    chosen = set(capabilities)
    unknown = sorted(chosen - set(CAPABILITIES))
    if unknown:
        raise ValidationError(
            {"capabilities": _("Unknown capabilities: %(names)s.") % {"names": ", ".join(unknown)}}
        )
    return chosen


def _members_reconnect(group: Group) -> None:
    """Members' open pages reconnect with their new rights (a socket keeps the rights it opened with)."""
    for user_id in list(User.objects.filter(groups=group).values_list("pk", flat=True)):
        transaction.on_commit(lambda user_id=user_id: sessions_end_quietly(user_id, rights_changed=True))


@transaction.atomic
def role_create(*, actor, name: str, template: str = "", scope: str = CustomerScope.ALL) -> Group:
    """A new role, holding the capabilities of ``template`` (a role's name) or none."""
    name = _clean_name(name)
    scope = _clean_scope(scope)
    capabilities: set[str] = set()
    if template:
        source = Group.objects.filter(name=template).first()
        if source is None:
            raise ValidationError({"template": _("Unknown role “%(role)s”.") % {"role": template}})
        capabilities = set(
            source.permissions.filter(content_type__app_label="cdp").values_list("codename", flat=True)
        )
    group = Group.objects.create(name=name)
    group.permissions.set(_capability_permissions(capabilities & set(CAPABILITIES)))
    StaffRole.objects.create(group=group, scope=scope)
    audit_record(
        actor=actor,
        action="role.create",
        target=group,
        details={"template": template or None, "capabilities": sorted(capabilities), "scope": scope},
    )
    return group


@transaction.atomic
def role_update(
    *, actor, group: Group, name: str | None = None, capabilities=None, scope: str | None = None
) -> Group:
    """Renames a role (not a built-in one), sets its capabilities and its scope; each change audited.
    Members' open pages reconnect when what they may see changes."""
    with managers_kept(field="capabilities"):
        changed_rights = _role_change(
            actor=actor, group=group, name=name, capabilities=capabilities, scope=scope
        )
    if changed_rights:
        _members_reconnect(group)
    return group


def _role_change(*, actor, group: Group, name, capabilities, scope) -> bool:
    changed_rights = False
    if name is not None and name != group.name:
        if role_is_builtin(group):
            raise ValidationError(
                {"name": _("Built-in roles keep their names; make a copy to name it otherwise.")}
            )
        old_name, group.name = group.name, _clean_name(name, excluding=group)
        group.save(update_fields=["name"])
        audit_record(
            actor=actor, action="role.rename", target=group, details={"from": old_name, "to": group.name}
        )
    if capabilities is not None:
        wanted = _clean_capabilities(capabilities)
        if group.name == ROLE_ADMIN and MANAGE_USERS not in wanted:
            raise ValidationError(
                {"capabilities": _("The Admin role always keeps “Manage users, roles and settings”.")}
            )
        held = set(group.permissions.filter(content_type__app_label="cdp").values_list("codename", flat=True))
        if wanted != held:
            group.permissions.set(_capability_permissions(wanted))
            audit_record(
                actor=actor,
                action="role.capabilities",
                target=group,
                details={"added": sorted(wanted - held), "removed": sorted(held - wanted)},
            )
            changed_rights = True
    if scope is not None:
        scope = _clean_scope(scope)
        staff_role, _created = StaffRole.objects.get_or_create(group=group)
        if staff_role.scope != scope:
            audit_record(
                actor=actor,
                action="role.scope",
                target=group,
                details={"from": staff_role.scope, "to": scope},
            )
            staff_role.scope = scope
            staff_role.save(update_fields=["scope"])
            changed_rights = True
    return changed_rights


@transaction.atomic
def role_delete(*, actor, group: Group, move_to: Group | None = None) -> int:
    """Deletes a role that is not built in. Its members move to ``move_to``; a role someone holds is
    refused without one, saying how many hold it. Returns how many users moved."""
    if role_is_builtin(group):
        raise ValidationError(_("Built-in roles cannot be deleted."))
    members = list(User.objects.filter(groups=group))
    if members and move_to is None:
        raise ValidationError(
            {
                "move_to": translation.ngettext(
                    "%(count)s user holds this role: choose the role they get instead.",
                    "%(count)s users hold this role: choose the role they get instead.",
                    len(members),
                )
                % {"count": len(members)}
            }
        )
    if move_to is not None and move_to.pk == group.pk:
        raise ValidationError({"move_to": _("Choose another role for its users.")})
    with managers_kept(field="move_to"):
        _role_remove(actor=actor, group=group, members=members, move_to=move_to)
    return len(members)


def _role_remove(*, actor, group: Group, members: list, move_to: Group | None) -> None:
    for user in members:
        user.groups.remove(group)
        user.groups.add(move_to)
        audit_record(
            actor=actor,
            action="user.role_change",
            target=user,
            details={"from": group.name, "to": move_to.name},
        )
        transaction.on_commit(lambda user_id=user.pk: sessions_end_quietly(user_id, rights_changed=True))
    audit_record(
        actor=actor,
        action="role.delete",
        target=group,
        details={"moved": len(members), "to": move_to.name if move_to else None},
    )
    group.delete()


def role_changed_notify(*, user, role: str) -> None:
    """Tells the user's open pages their new role, each in its own language, then closes their
    sockets so they reconnect with the new rights."""
    with translation.override(None):  # the label's source text: each page translates it
        label = role_label(role)
    # robust: the change is committed; a realtime hiccup must not turn it into an error page.
    transaction.on_commit(
        lambda: notify_user(
            user_id=user.pk,
            kind="role_changed",
            message=gettext_noop("Your role is now %(role)s."),
            params={"role": label},
            translated_params=("role",) if role in ROLE_LABELS else (),
        ),
        robust=True,
    )
    transaction.on_commit(lambda: sessions_end_quietly(user.pk, rights_changed=True))


# --------------------------------------------------------------------------------------------------
# Teams


def team_choices() -> list[tuple[str, str]]:
    return [("", _("No team")), *((str(team.pk), team.name) for team in Team.objects.all())]


@transaction.atomic
def team_create(*, actor, name: str) -> Team:
    name = " ".join(name.split())
    if not name:
        raise ValidationError({"name": _("Give the team a name.")})
    if Team.objects.filter(name__iexact=name).exists():
        raise ValidationError({"name": _("A team named “%(name)s” already exists.") % {"name": name}})
    team = Team.objects.create(name=name[:100])
    audit_record(actor=actor, action="team.create", target=team)
    return team


def user_team(user) -> Team | None:
    profile = StaffProfile.objects.filter(user=user).select_related("team").first()
    return profile.team if profile else None


@transaction.atomic
def user_set_team(*, actor, user, team: Team | None) -> None:
    """Puts the user in a team (or none); audited, and their open pages reconnect: a team scope now
    covers other customers."""
    profile, _created = StaffProfile.objects.select_for_update().get_or_create(user=user)
    if profile.team_id == (team.pk if team else None):
        return
    old = profile.team.name if profile.team else None
    profile.team = team
    profile.save(update_fields=["team"])
    audit_record(
        actor=actor,
        action="user.team_change",
        target=user,
        details={"from": old, "to": team.name if team else None},
    )
    transaction.on_commit(lambda: sessions_end_quietly(user.pk, rights_changed=True))
