"""Keys for data at rest: the identity hash key, the personal-data encryption keys, the channel secrets keys.

``IDENTITY_HASH_KEY`` makes the lookup hashes of ID numbers. ``PII_ENCRYPTION_KEYS`` (the encrypted
copies of ID numbers) and ``CHANNEL_SECRETS_KEY`` (channel accounts' secrets) are lists of Fernet
keys, newest first: values are encrypted with the first and read with any of them, so a key rotates
by putting a new one first, running ``manage.py rotate_keys`` and then removing the old one.

Deployments from before these settings encrypted with keys derived from ``SECRET_KEY`` (and took any
text as ``CHANNEL_SECRETS_KEY``): those keys stay readable as the last fallback, never used to
encrypt, until ``rotate_keys`` has moved everything to the new keys.

Production requires the three settings (``cdp.settings`` refuses to start without them, and
``manage.py check --deploy`` names them); development and the quickstart generate them once under
the var directory (``local_keys``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

IDENTITY_HASH_KEY_MIN_LENGTH = 32
GENERATE_HINT = "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
KEY_SETTINGS = ("IDENTITY_HASH_KEY", "PII_ENCRYPTION_KEYS", "CHANNEL_SECRETS_KEY")


def is_fernet_key(text: str) -> bool:
    try:
        Fernet(text)
    except (ValueError, TypeError):
        return False
    return True


def key_problems(
    *, identity_hash_key: str, pii_encryption_keys: Sequence[str], channel_secrets_keys: Sequence[str]
) -> list[tuple[str, str]]:
    """``(setting, problem)`` for each missing or malformed key; the values themselves never appear."""
    problems = []
    if not identity_hash_key:
        problems.append(("IDENTITY_HASH_KEY", "is required but not set."))
    elif len(identity_hash_key) < IDENTITY_HASH_KEY_MIN_LENGTH or len(set(identity_hash_key)) < 10:
        problems.append(
            (
                "IDENTITY_HASH_KEY",
                f"is too short or too plain: use at least {IDENTITY_HASH_KEY_MIN_LENGTH} random characters "
                "(python -c 'import secrets; print(secrets.token_urlsafe(48))').",
            )
        )
    if not pii_encryption_keys:
        problems.append(("PII_ENCRYPTION_KEYS", "is required but not set."))
    for position, key in enumerate(pii_encryption_keys, start=1):
        if not is_fernet_key(key):
            problems.append(
                (
                    "PII_ENCRYPTION_KEYS",
                    f"key {position} is not a Fernet key "
                    f"(32 url-safe base64-encoded bytes: {GENERATE_HINT}).",
                )
            )
    if not channel_secrets_keys:
        problems.append(("CHANNEL_SECRETS_KEY", "is required but not set."))
    elif not is_fernet_key(channel_secrets_keys[0]):
        # Older entries may be the free-text keys of before, kept readable until rotate_keys has run.
        problems.append(
            (
                "CHANNEL_SECRETS_KEY",
                f"key 1 (the one new secrets are encrypted with) is not a Fernet key (32 url-safe "
                f"base64-encoded bytes: {GENERATE_HINT}).",
            )
        )
    return problems


def keys_generate() -> dict[str, str]:
    """Fresh keys for the three settings, as environment variables (development, benchmarks)."""
    return {
        "IDENTITY_HASH_KEY": secrets.token_urlsafe(48),
        "PII_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "CHANNEL_SECRETS_KEY": Fernet.generate_key().decode(),
    }


def local_keys(var_dir: Path) -> dict[str, str]:
    """The development keys, generated on first use and kept in ``var_dir/keys.json`` (only its owner
    may read it): restarting the quickstart keeps reading what it encrypted before."""
    path = var_dir / "keys.json"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        draft = var_dir / f".keys.{os.getpid()}.json"
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(keys_generate(), file, indent=2)
        try:
            # Several processes may start at once (the quickstart's workers): the first one's keys win.
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return json.loads(path.read_text())


@dataclass(frozen=True)
class Keyring:
    """Encrypts with the newest key, decrypts with any, and says which tokens need re-encrypting."""

    newest: Fernet
    every: MultiFernet

    def encrypt(self, data: bytes) -> bytes:
        return self.newest.encrypt(data)

    def decrypt(self, token: bytes) -> bytes:
        return self.every.decrypt(token)

    def rotated(self, token: str) -> str | None:
        """The token encrypted with the newest key, or None when it already is. Raises ``InvalidToken``
        when no key reads it."""
        try:
            self.newest.decrypt(token.encode())
        except InvalidToken:
            return self.every.rotate(token.encode()).decode()
        return None


@cache
def _keyring(fernet_keys: tuple[bytes, ...]) -> Keyring:
    fernets = [Fernet(key) for key in fernet_keys]
    return Keyring(newest=fernets[0], every=MultiFernet(fernets))


def _derived_from_secret_key(secret_key: str, purpose: bytes) -> bytes:
    master = hashlib.sha256(secret_key.encode()).digest()
    return hmac.new(master, purpose, hashlib.sha256).digest()


def _stretched(text: str) -> bytes:
    """How channel secrets keys were made from any text before they were Fernet keys."""
    return base64.urlsafe_b64encode(hashlib.sha256(b"channel-secrets:" + text.encode()).digest())


def pii_keyring() -> Keyring:
    from django.conf import settings

    legacy = base64.urlsafe_b64encode(_derived_from_secret_key(settings.SECRET_KEY, b"identity-encrypt"))
    return _keyring((*(key.encode() for key in settings.PII_ENCRYPTION_KEYS), legacy))


def channel_secrets_keyring() -> Keyring:
    from django.conf import settings

    keys = [key.encode() if is_fernet_key(key) else _stretched(key) for key in settings.CHANNEL_SECRETS_KEY]
    return _keyring((*keys, _stretched(settings.SECRET_KEY)))


def identity_hash_key() -> bytes:
    from django.conf import settings

    return settings.IDENTITY_HASH_KEY.encode()
