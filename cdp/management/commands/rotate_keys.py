from django.core.management.base import BaseCommand

from cdp.key_rotation import RotationCounts, identities_rotate
from connectors.vault import accounts_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypts every stored secret with the newest key (PII_ENCRYPTION_KEYS, CHANNEL_SECRETS_KEY) and "
        "re-computes ID numbers' lookup hashes with IDENTITY_HASH_KEY, in batches. Safe to run again, also "
        "after an interruption; once it reports nothing unreadable, the older keys can be removed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, batch_size: int, **options):
        problems = 0
        for what, rotate in (("ID numbers", identities_rotate), ("Channel account secrets", accounts_rotate)):
            counts = rotate(
                batch_size=batch_size, progress=lambda counts, what=what: self._report(what, counts)
            )
            self._report(what, counts, final=True)
            problems += len(counts.unreadable) + len(counts.conflicts)
        if problems:
            self.stderr.write(
                "Some values were left as they were (see above): keep the older keys until they are resolved."
            )

    def _report(self, what: str, counts: RotationCounts, *, final: bool = False) -> None:
        line = (
            f"{what}: {counts.checked} checked, {counts.re_encrypted} re-encrypted, "
            f"{counts.re_hashed} re-hashed" + (" (done)" if final else "")
        )
        self.stdout.write(line)
        if final and counts.unreadable:
            self.stderr.write(f"{what}: no listed key reads rows {_ids(counts.unreadable)}.")
        if final and counts.conflicts:
            self.stderr.write(
                f"{what}: rows {_ids(counts.conflicts)} hash to an ID number another customer already holds: "
                "merge the two customers, then run rotate_keys again."
            )


def _ids(ids: list[int]) -> str:
    return ", ".join(map(str, ids[:20])) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
