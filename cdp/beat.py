"""Beat's scheduler: django-celery-beat's, sending a periodic task only when the previous copy has
started. A sweep that is still queued when the next one is due is not sent again (``cdp.wakeups``):
whatever the backlog, each sweep has at most one copy waiting, and it expires after its interval."""

from __future__ import annotations

import logging

from django_celery_beat.schedulers import DatabaseScheduler

from cdp.wakeups import HEADER, wakeup_claim

log = logging.getLogger(__name__)


class Scheduler(DatabaseScheduler):
    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        key = f"beat:{entry.name}"
        expires = entry.options.get("expires") or 60
        if not wakeup_claim(key=key, seconds=expires):
            log.info("beat: %s is still waiting for a worker; not sent again", entry.name)
            return None
        entry.options.setdefault("headers", {})[HEADER] = key
        return super().apply_async(entry, producer=producer, advance=advance, **kwargs)
