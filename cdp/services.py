"""Writes of the customer-data core and the project shell (users, roles, audit, heartbeat)."""

from __future__ import annotations

import logging
import socket

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.translation import gettext as _

from cdp.access import ROLE_ADMIN, ROLE_CAPABILITIES, ROLE_LABELS
from cdp.models import AuditEntry, BeatHeartbeat, Organization
from cdp.realtime import notify_user

User = get_user_model()
security_log = logging.getLogger("cdp.security")


def audit_record(*, actor, action: str, target, details: dict | None = None) -> AuditEntry:
    return AuditEntry.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        action=action,
        target_type=target._meta.label_lower,
        target_id=str(target.pk),
        target_label=str(target)[:300],
        details=details or {},
    )


def heartbeat_record() -> BeatHeartbeat:
    heartbeat, _created = BeatHeartbeat.objects.update_or_create(
        pk=1, defaults={"beat_at": timezone.now(), "worker": socket.gethostname()}
    )
    return heartbeat


def organization_ensure(*, name: str, industry: str = "") -> Organization:
    organization = Organization.objects.order_by("pk").first()
    if organization is None:
        return Organization.objects.create(name=name, industry=industry)
    if (organization.name, organization.industry) != (name, industry):
        organization.name, organization.industry = name, industry
        organization.save(update_fields=["name", "industry", "updated_at"])
    return organization


def _role_group(role: str) -> Group:
    if role not in ROLE_CAPABILITIES:
        raise ValidationError({"role": _("Unknown role “%(role)s”.") % {"role": role}})
    return Group.objects.get(name=role)


def invitation_path(*, user) -> str:
    """A one-time link where an invited user sets their password (valid PASSWORD_RESET_TIMEOUT)."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return reverse("accept_invitation", kwargs={"uidb64": uid, "token": token})


@transaction.atomic
def user_create(*, actor, username: str, email: str, full_name: str, role: str, password: str = "") -> User:
    """Creates a staff user in one role. Without a password the user gets an invitation link."""
    username = username.strip()
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": _("A user with this username already exists.")})
    group = _role_group(role)
    user = User(username=username, email=email.strip().lower())
    # One display name: Chinese names do not split into given and family names the Western way.
    user.first_name, user.last_name = full_name.strip()[:150], ""
    if password:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise ValidationError({"password": exc.messages}) from exc
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    user.groups.set([group])
    audit_record(actor=actor, action="user.create", target=user, details={"role": role})
    return user


def _would_leave_no_admin(user) -> bool:
    other_admins = User.objects.filter(groups__name=ROLE_ADMIN, is_active=True).exclude(pk=user.pk)
    return user.groups.filter(name=ROLE_ADMIN).exists() and not other_admins.exists()


@transaction.atomic
def user_update(*, actor, user, email: str, full_name: str, role: str) -> User:
    group = _role_group(role)
    previous_role = user.groups.values_list("name", flat=True).first()
    if role != ROLE_ADMIN and _would_leave_no_admin(user):
        raise ValidationError({"role": _("This is the last active admin; make someone else admin first.")})
    user.email = email.strip().lower()
    # One display name: Chinese names do not split into given and family names the Western way.
    user.first_name, user.last_name = full_name.strip()[:150], ""
    user.save(update_fields=["email", "first_name", "last_name"])
    if previous_role != role:
        user.groups.set([group])
        audit_record(
            actor=actor, action="user.role_change", target=user, details={"from": previous_role, "to": role}
        )
        transaction.on_commit(
            lambda: notify_user(
                user_id=user.pk,
                kind="role_changed",
                text=_("Your role is now %(role)s.") % {"role": ROLE_LABELS[role]},
            )
        )
    return user


@transaction.atomic
def user_set_active(*, actor, user, active: bool) -> User:
    if not active:
        if actor is not None and actor.pk == user.pk:
            raise ValidationError(_("You cannot deactivate your own account."))
        if _would_leave_no_admin(user):
            raise ValidationError(_("This is the last active admin; make someone else admin first."))
    if user.is_active == active:
        return user
    user.is_active = active
    user.save(update_fields=["is_active"])
    audit_record(actor=actor, action="user.activate" if active else "user.deactivate", target=user)
    if not active:
        security_log.info("user %s deactivated by %s", user.username, actor)
    return user
