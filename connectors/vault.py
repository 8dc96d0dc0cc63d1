"""Channel account secrets, encrypted at rest with the CHANNEL_SECRETS_KEY keys (newest first, cdp.keys)."""

from __future__ import annotations

import json

from cryptography.fernet import InvalidToken

from cdp.key_rotation import Progress, RotationCounts, locked_batches
from cdp.keys import channel_secrets_keyring
from connectors.models import ChannelAccount


def secrets_seal(values: dict[str, str]) -> str:
    return (
        channel_secrets_keyring().encrypt(json.dumps(values, sort_keys=True).encode()).decode()
        if values
        else ""
    )


def secrets_open(token: str) -> dict[str, str]:
    """The decrypted secrets; an empty dict when none are stored. Raises ``SecretsUnreadable`` when
    none of the keys reads them."""
    if not token:
        return {}
    try:
        return json.loads(channel_secrets_keyring().decrypt(token.encode()))
    except InvalidToken:
        raise SecretsUnreadable from None


class SecretsUnreadable(Exception):
    """The stored secrets were encrypted with a key no longer listed in CHANNEL_SECRETS_KEY."""


def accounts_rotate(*, batch_size: int = 500, progress: Progress | None = None) -> RotationCounts:
    """Every channel account's secrets under the newest CHANNEL_SECRETS_KEY (``manage.py rotate_keys``)."""
    counts = RotationCounts()
    keyring = channel_secrets_keyring()
    for batch in locked_batches(ChannelAccount.objects.exclude(secrets_encrypted=""), batch_size=batch_size):
        for account in batch:
            counts.checked += 1
            try:
                resealed = keyring.rotated(account.secrets_encrypted)
            except InvalidToken:
                counts.unreadable.append(account.pk)
                continue
            if resealed is not None:
                account.secrets_encrypted = resealed
                account.save(update_fields=["secrets_encrypted"])
                counts.re_encrypted += 1
        if progress:
            progress(counts)
    return counts
