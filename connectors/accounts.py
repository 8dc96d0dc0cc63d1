"""Channel accounts: created from a kind's settings schema, secrets sealed, paused and resumed."""

from __future__ import annotations

import logging

import pydantic
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from cdp.access import user_can
from cdp.realtime import notify_user
from cdp.services import audit_record
from connectors.models import ChannelAccount, Message
from connectors.protocol import ConnectorKind
from connectors.registry import kind_get
from connectors.vault import secrets_open, secrets_seal

log = logging.getLogger(__name__)


def _split(kind: type[ConnectorKind], values: dict) -> tuple[dict, dict]:
    secret_names = set(kind.secret_fields())
    plain = {name: value for name, value in values.items() if name not in secret_names}
    hidden = {name: value for name, value in values.items() if name in secret_names}
    return plain, hidden


def _validated(kind: type[ConnectorKind], values: dict) -> dict:
    model, problems = kind.settings_validate(values)
    if problems:
        raise ValidationError({name: [problem] for name, problem in problems.items()})
    return model.model_dump(mode="json")


def _rate_checked(rate_per_second: float) -> float:
    if not 0 < rate_per_second <= 100_000:
        raise ValidationError({"rate_per_second": [_("Give a rate between 0 and 100,000 sends per second.")]})
    return float(rate_per_second)


@transaction.atomic
def account_create(
    *, kind: str, name: str, values: dict, rate_per_second: float = 100, actor=None
) -> ChannelAccount:
    """Validates the settings against the kind's schema; refuses with every field and its problem."""
    try:
        kind_class = kind_get(kind)
    except LookupError:
        raise ValidationError({"kind": [_("Unknown channel kind “%(kind)s”.") % {"kind": kind}]}) from None
    if not name.strip():
        raise ValidationError({"name": [_("Give the account a name.")]})
    plain, hidden = _split(kind_class, _validated(kind_class, values))
    account = ChannelAccount.objects.create(
        name=name.strip()[:200],
        kind=kind,
        channel=kind_class.channel,
        settings=plain,
        secrets_encrypted=secrets_seal(hidden),
        rate_per_second=_rate_checked(rate_per_second),
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO connectors_ratebucket (account_id, tokens, refilled_at) VALUES (%s, 0, now())",
            [account.pk],
        )
    # The audit names the fields changed, never the secrets' values.
    audit_record(actor=actor, action="channel_account.create", target=account, details={"kind": kind})
    return account


@transaction.atomic
def account_update(
    *, account: ChannelAccount, name: str, values: dict, rate_per_second: float, actor=None
) -> ChannelAccount:
    """Secret fields left empty keep their stored value (they are never shown, so never refilled)."""
    kind_class = kind_get(account.kind)
    current = {**account.settings, **secrets_open(account.secrets_encrypted)}
    merged = {**values}
    for name_ in kind_class.secret_fields():
        if not merged.get(name_):
            merged[name_] = current.get(name_, "")
    plain, hidden = _split(kind_class, _validated(kind_class, merged))
    changed = sorted(key for key in {**plain, **hidden} if {**plain, **hidden}[key] != current.get(key))
    account.name = name.strip()[:200] or account.name
    account.settings = plain
    account.secrets_encrypted = secrets_seal(hidden)
    account.rate_per_second = _rate_checked(rate_per_second)
    account.save()
    audit_record(actor=actor, action="channel_account.update", target=account, details={"changed": changed})
    return account


class AccountSettingsUnusable(Exception):
    """The account's stored settings no longer validate: names the fields and the problems, never
    the values (they include decrypted secrets)."""


def kind_instance(account: ChannelAccount) -> ConnectorKind:
    """The account's connector, with its settings (secrets decrypted) validated."""
    kind_class = kind_get(account.kind)
    values = {**account.settings, **secrets_open(account.secrets_encrypted)}
    try:
        settings = kind_class.settings_model.model_validate(values)
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'settings'}: {item['msg']}"
            for item in error.errors(include_input=False, include_url=False)
        )
        raise AccountSettingsUnusable(problems) from None
    return kind_class(account_id=account.pk, settings=settings)


def _admins_to_tell() -> list[int]:
    users = get_user_model().objects.filter(is_active=True).prefetch_related("groups__permissions")
    return [user.pk for user in users if user_can(user, "manage_channels")]


def admins_notify(*, message: str, params: dict, data: dict) -> None:
    """Tells every admin who manages channels, on their open pages (``message`` untranslated)."""
    for user_id in _admins_to_tell():
        try:
            notify_user(user_id=user_id, kind="warning", message=message, params=params, data=data)
        except Exception:  # the realtime layer being away must not fail the dispatcher
            log.warning("could not notify user %s", user_id, exc_info=True)


def account_pause(*, account_id: int, reason: str, actor=None) -> bool:
    """Stops every send of the account (its queued messages wait as they are) and tells its admins.
    Returns whether it was running before. Runs inside the caller's transaction if there is one."""
    updated = ChannelAccount.objects.filter(pk=account_id, status=ChannelAccount.Status.ACTIVE).update(
        status=ChannelAccount.Status.PAUSED, paused_reason=reason[:2000], paused_at=timezone.now()
    )
    if not updated:
        return False
    account = ChannelAccount.objects.get(pk=account_id)
    audit_record(actor=actor, action="channel_account.pause", target=account, details={"reason": reason})

    transaction.on_commit(
        lambda: admins_notify(
            message=gettext_noop("Channel account “%(name)s” is paused: %(reason)s"),
            params={"name": account.name, "reason": reason[:300]},
            data={"account": account.pk},
        )
    )
    return True


@transaction.atomic
def account_resume(*, account: ChannelAccount, actor=None) -> int:
    """Runs the account again; messages held by the pause go back to the queue. Returns how many."""
    account.status = ChannelAccount.Status.ACTIVE
    account.paused_reason, account.paused_at = "", None
    account.save(update_fields=["status", "paused_reason", "paused_at"])
    released = Message.objects.filter(account=account, status=Message.Status.HELD).update(
        status=Message.Status.QUEUED, reason="", due_at=timezone.now()
    )
    audit_record(actor=actor, action="channel_account.resume", target=account, details={"released": released})
    from connectors.dispatcher import dispatch_wake

    transaction.on_commit(lambda: dispatch_wake(account_id=account.pk))
    return released
