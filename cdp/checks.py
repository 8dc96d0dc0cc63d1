"""System checks: ``manage.py check --deploy`` names each key for data at rest that is missing or unfit."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register

from cdp.keys import key_problems


@register(Tags.security, deploy=True)
def keys_for_data_at_rest(app_configs, **kwargs) -> list[Error]:
    errors = [
        Error(f"{name} {problem}", hint="See docs/configuration.md, 'Keys for data at rest'.", id="cdp.E001")
        for name, problem in key_problems(
            identity_hash_key=settings.IDENTITY_HASH_KEY,
            pii_encryption_keys=settings.PII_ENCRYPTION_KEYS,
            channel_secrets_keys=settings.CHANNEL_SECRETS_KEY,
        )
    ]
    errors += [
        Error(
            f"{name} was generated for development under the var directory: set it in the environment.",
            hint="See docs/configuration.md, 'Keys for data at rest'.",
            id="cdp.E002",
        )
        for name in settings.KEYS_GENERATED_LOCALLY
    ]
    return errors
