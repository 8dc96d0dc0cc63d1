from celery import shared_task

from cdp.imports import import_run as run_import
from cdp.ingest import WAKE_INTERVAL, batches_process
from cdp.ingest import ingest_failed_expire as failed_expire
from cdp.services import heartbeat_record


@shared_task
def heartbeat() -> None:
    """Scheduled by beat; its timestamp proves beat and a worker are both alive (see /healthz)."""
    heartbeat_record()


@shared_task
def ingest_batches(batch_id: int | None = None, sent_at: float | None = None) -> int:
    """Processes what is pending, oldest first and many requests at a time: sent by the tracking API
    (at most every WAKE_INTERVAL per process, ``sent_at`` saying when) and by beat's sweep."""
    settle_until = sent_at + WAKE_INTERVAL + 0.05 if sent_at is not None else None
    return batches_process(settle_until=settle_until)


@shared_task
def import_run(job_id: int) -> None:
    """Loads an uploaded CSV in the background (progress shows on the import page)."""
    run_import(job_id=job_id)


@shared_task
def ingest_failed_expire() -> int:
    """Beat: failed tracking requests past their retention are deleted."""
    return failed_expire()
