"""Writes of the customer-data core and the project shell (users, roles, audit, heartbeat)."""

from __future__ import annotations

import datetime as dt
import secrets
import socket
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.translation import gettext as _

from cdp.api.authentication import token_hash
from cdp.models import ApiToken, AuditEntry, BeatHeartbeat, Consent, Customer, Note, Organization, Source
from cdp.signals import security_log
from cdp.users import display_name

User = get_user_model()


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
    group = Group.objects.filter(name=role).first()
    if group is None:
        raise ValidationError({"role": _("Unknown role “%(role)s”.") % {"role": role}})
    return group


def _set_display_name(user, full_name: str) -> None:
    # One display name: Chinese names do not split into given and family names the Western way.
    user.first_name, user.last_name = full_name.strip()[:150], ""


def invitation_url(*, user) -> str:
    """A one-time link where an invited user sets their password (valid PASSWORD_RESET_TIMEOUT)."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return settings.SITE_URL + reverse("accept_invitation", kwargs={"uidb64": uid, "token": token})


def _send_invitation(*, user, inviter) -> None:
    context = {
        "name": display_name(user),
        "inviter": display_name(inviter) if inviter else "",
        "link": invitation_url(user=user),
        "username": user.username,
    }
    send_mail(
        subject=_("You are invited to the journey builder"),
        message=render_to_string("registration/invitation_email.txt", context),
        from_email=None,
        recipient_list=[user.email],
        fail_silently=True,  # the admin also sees the link on the user's page
    )


@transaction.atomic
def user_create(
    *, actor, username: str, email: str, full_name: str, role: str, password: str = "", team=None
) -> User:
    """Creates a staff user in one role (and a team). Without a password the user is emailed an
    invitation link."""
    from cdp.staff_roles import user_set_team

    username = username.strip()
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": _("A user with this username already exists.")})
    group = _role_group(role)
    user = User(username=username, email=email.strip().lower())
    _set_display_name(user, full_name)
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
    if team is not None:
        user_set_team(actor=actor, user=user, team=team)
    if not password:
        transaction.on_commit(lambda: _send_invitation(user=user, inviter=actor), robust=True)
    return user


# Left unchanged when not given (callers that only change the profile or the role).
KEEP = object()


@transaction.atomic
def user_update(*, actor, user, email: str, full_name: str, role: str, team=KEEP) -> User:
    """Changes a user's profile, role and team. A change of role or team is audited and closes the
    user's open sockets, which reconnect with the new rights; the last user manager keeps the role."""
    from cdp.staff_roles import LAST_ADMIN, managers_kept, role_changed_notify, user_set_team

    group = _role_group(role)
    previous_role = user.groups.values_list("name", flat=True).order_by("name").first()
    user.email = email.strip().lower()
    _set_display_name(user, full_name)
    user.save(update_fields=["email", "first_name", "last_name"])
    if previous_role != role or user.groups.count() != 1:
        with managers_kept(field="role", message=LAST_ADMIN):
            user.groups.set([group])
        audit_record(
            actor=actor, action="user.role_change", target=user, details={"from": previous_role, "to": role}
        )
        role_changed_notify(user=user, role=role)
    if team is not KEEP:
        user_set_team(actor=actor, user=user, team=team)
    return user


@transaction.atomic
def user_set_active(*, actor, user, active: bool) -> User:
    from cdp.staff_roles import LAST_ADMIN, managers_kept

    if not active and actor is not None and actor.pk == user.pk:
        raise ValidationError(_("You cannot deactivate your own account."))
    if user.is_active == active:
        return user
    with managers_kept(message=LAST_ADMIN):
        user.is_active = active
        user.save(update_fields=["is_active"])
    audit_record(actor=actor, action="user.activate" if active else "user.deactivate", target=user)
    if not active:
        security_log.info("user %s deactivated by %s", user.username, actor)
        transaction.on_commit(lambda: sessions_end_quietly(user.pk))
    return user


def sessions_end_quietly(user_id: int, *, rights_changed: bool = False) -> None:
    """Closes the user's open sockets: all of them when deactivated; when their rights changed, the
    live-data ones (pages reconnect under the new rights)."""
    from cdp.realtime import live_sockets_reopen, sessions_end

    try:
        (live_sockets_reopen if rights_changed else sessions_end)(user_id=user_id)
    except Exception:  # the realtime layer being down must not undo the change
        security_log.warning("could not close the open pages of user %s", user_id, exc_info=True)


def _new_write_key() -> str:
    return secrets.token_urlsafe(24)


@transaction.atomic
def source_create(*, name: str, kind: str, actor=None) -> Source:
    name = name.strip()
    if not name:
        raise ValidationError({"name": _("Give the source a name.")})
    if kind not in Source.Kind.values:
        raise ValidationError(
            {
                "kind": _("Unknown kind “%(kind)s”; use one of %(kinds)s.")
                % {"kind": kind, "kinds": ", ".join(Source.Kind.values)}
            }
        )
    source = Source.objects.create(name=name, kind=kind, write_key=_new_write_key(), created_by=actor)
    audit_record(actor=actor, action="source.create", target=source, details={"kind": kind})
    return source


def internal_source(*, name: str, kind: str) -> Source:
    """The source the product itself writes through (imports, the open API), with an unguessable key."""
    source = Source.objects.filter(name=name, kind=kind).order_by("pk").first()
    if source is None:
        source = Source.objects.create(name=name, kind=kind, write_key=f"internal-{_new_write_key()}")
    return source


@transaction.atomic
def source_rotate_key(*, source: Source, actor=None) -> Source:
    """A new write key at once; clients still sending the old one get 401 from now on."""
    source.write_key = _new_write_key()
    source.save(update_fields=["write_key"])
    audit_record(actor=actor, action="source.rotate_key", target=source)
    return source


@transaction.atomic
def source_set_enabled(*, source: Source, enabled: bool, actor=None) -> Source:
    source.enabled = enabled
    source.save(update_fields=["enabled"])
    audit_record(actor=actor, action="source.enable" if enabled else "source.disable", target=source)
    return source


@transaction.atomic
def note_add(*, customer: Customer, author, text: str) -> Note:
    text = text.strip()
    if not text:
        raise ValidationError({"text": _("Write something first.")})
    return Note.objects.create(customer=customer, author=author, text=text[:5000])


@transaction.atomic
def customer_assign_owner(*, customer: Customer, owner, actor) -> Customer:
    customer.owner = owner
    customer.save(update_fields=["owner", "updated_at"])
    audit_record(
        actor=actor,
        action="customer.owner",
        target=customer,
        details={"owner": owner.username if owner else None},
    )
    return customer


@transaction.atomic
def consent_set(*, customer: Customer, channel: str, subscribed: bool, origin: str) -> Consent:
    status = Consent.Status.SUBSCRIBED if subscribed else Consent.Status.UNSUBSCRIBED
    consent_record(
        customer_id=customer.pk, channel=channel, status=status, changed_at=timezone.now(), origin=origin
    )
    return Consent.objects.get(customer=customer, channel=channel)


# How far ahead of the server's clock an event may be dated (clients' clocks drift a little): later
# dates are brought back to this bound, so that no one can date a decision to win every later one.
FUTURE_SKEW = dt.timedelta(minutes=5)


def consent_record(
    *, customer_id: int, channel: str, status: str, changed_at, origin: str, explicit: bool = False
) -> bool:
    """Records a consent decision unless a newer one is already recorded for that channel (late
    events and merges never undo a newer decision). Returns whether it was recorded.

    ``explicit``: the customer said no themselves, right now (an unsubscribe link, a provider's
    unsubscribe receipt): that always wins, whatever date the current decision bears. A decision
    dated beyond the server's clock (stored before dates were bounded) counts as dated now."""
    now = timezone.now()
    changed_at = min(changed_at, now + FUTURE_SKEW)
    current = Consent.objects.filter(customer_id=customer_id, channel=channel).first()
    overrides = explicit and status == Consent.Status.UNSUBSCRIBED
    if current is not None and not overrides and min(current.changed_at, now) > changed_at:
        return False
    Consent.objects.update_or_create(
        customer_id=customer_id,
        channel=channel,
        defaults={"status": status, "changed_at": changed_at, "origin": origin[:200]},
    )
    return True


@dataclass(frozen=True)
class IssuedToken:
    """A token just made: ``key`` is shown to its owner this once and kept only as its hash."""

    key: str
    token: ApiToken


API_TOKEN_LIFETIMES = (30, 90, 365)  # days; None: until revoked


@transaction.atomic
def api_token_rotate(*, user, expires_in_days: int | None = 90) -> IssuedToken:
    """A new API token for the user (the old one stops working); it acts with the user's role."""
    if expires_in_days is not None and expires_in_days not in API_TOKEN_LIFETIMES:
        raise ValidationError({"expires_in_days": [_("Choose 30, 90 or 365 days, or no expiry.")]})
    key = secrets.token_hex(20)
    now = timezone.now()
    ApiToken.objects.filter(user=user).delete()
    token = ApiToken.objects.create(
        user=user,
        key_hash=token_hash(key),
        prefix=key[:8],
        created_at=now,
        expires_at=now + dt.timedelta(days=expires_in_days) if expires_in_days else None,
    )
    audit_record(actor=user, action="user.api_token", target=user)
    return IssuedToken(key, token)


@transaction.atomic
def api_token_revoke(*, user) -> None:
    ApiToken.objects.filter(user=user).delete()
    audit_record(actor=user, action="user.api_token_revoke", target=user)


@transaction.atomic
def api_tokens_revoke_all(*, actor) -> int:
    """Every user's token stops working at once (after a leak): they make new ones."""
    count, _by_model = ApiToken.objects.all().delete()
    audit_record(actor=actor, action="user.api_tokens_revoke_all", target=actor, details={"count": count})
    return count
