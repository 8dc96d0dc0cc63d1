"""Channel account secrets, encrypted at rest with a key from the environment (CHANNEL_SECRETS_KEY)."""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


@cache
def _fernet(key_material: str) -> Fernet:
    # Any text is accepted as the key: it is stretched into a Fernet key, salted per purpose.
    digest = hashlib.sha256(b"channel-secrets:" + key_material.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _current() -> Fernet:
    return _fernet(settings.CHANNEL_SECRETS_KEY or settings.SECRET_KEY)


def secrets_seal(values: dict[str, str]) -> str:
    return _current().encrypt(json.dumps(values, sort_keys=True).encode()).decode() if values else ""


def secrets_open(token: str) -> dict[str, str]:
    """The decrypted secrets; an empty dict when none are stored. Raises ``SecretsUnreadable`` when
    they were sealed with another key."""
    if not token:
        return {}
    try:
        return json.loads(_current().decrypt(token.encode()))
    except InvalidToken:
        raise SecretsUnreadable from None


class SecretsUnreadable(Exception):
    """The stored secrets were encrypted with another key (CHANNEL_SECRETS_KEY changed)."""
