"""Moving stored values to the newest keys (``manage.py rotate_keys``), in batches, any number of times.

Each batch is locked and committed on its own, so an interrupted run keeps what it did and the next
run finds it current and goes on. Values already encrypted with the newest key (and hashes already
made with the current hash key) are left as they are: a second run rewrites nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from cryptography.fernet import InvalidToken
from django.db import models, transaction

from cdp.identity import decrypt_sensitive, hash_sensitive
from cdp.keys import pii_keyring
from cdp.models import Identity


@dataclass
class RotationCounts:
    checked: int = 0
    re_encrypted: int = 0
    re_hashed: int = 0
    # Row ids no listed key reads (their key was removed too early), or whose new hash another
    # customer already holds (the same ID number reached a second customer between the deployment of
    # the new hash key and this run: merge them, then run again).
    unreadable: list[int] = field(default_factory=list)
    conflicts: list[int] = field(default_factory=list)


Progress = Callable[[RotationCounts], None]


def locked_batches(queryset: models.QuerySet, *, batch_size: int) -> Iterator[list[models.Model]]:
    """The rows in id order, ``batch_size`` at a time, each batch locked in a transaction of its own
    that commits when the caller asks for the next one."""
    last_pk = 0
    while True:
        with transaction.atomic():
            batch = list(queryset.filter(pk__gt=last_pk).order_by("pk").select_for_update()[:batch_size])
            if not batch:
                return
            yield batch
        last_pk = batch[-1].pk


def identities_rotate(*, batch_size: int = 500, progress: Progress | None = None) -> RotationCounts:
    """Every ID number's encrypted copy under the newest PII key, its lookup hash under the current
    IDENTITY_HASH_KEY (computed from the decrypted copy), so the same number finds the same customer."""
    counts = RotationCounts()
    keyring = pii_keyring()
    for batch in locked_batches(Identity.objects.exclude(encrypted_value=""), batch_size=batch_size):
        for identity in batch:
            counts.checked += 1
            try:
                number = decrypt_sensitive(identity.encrypted_value)
                re_encrypted = keyring.rotated(identity.encrypted_value)
            except InvalidToken:
                counts.unreadable.append(identity.pk)
                continue
            changed = []
            if re_encrypted is not None:
                identity.encrypted_value = re_encrypted
                changed.append("encrypted_value")
                counts.re_encrypted += 1
            current_hash = hash_sensitive(number)
            if identity.value != current_hash:
                taken = Identity.objects.filter(type=identity.type, value=current_hash).exclude(
                    pk=identity.pk
                )
                if taken.exists():
                    counts.conflicts.append(identity.pk)
                else:
                    identity.value = current_hash
                    changed.append("value")
                    counts.re_hashed += 1
            if changed:
                identity.save(update_fields=changed)
        if progress:
            progress(counts)
    return counts
