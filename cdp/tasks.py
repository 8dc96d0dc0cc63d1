from celery import shared_task

from cdp.imports import import_run as run_import
from cdp.ingest import batches_process
from cdp.services import heartbeat_record


@shared_task
def heartbeat() -> None:
    """Scheduled by beat; its timestamp proves beat and a worker are both alive (see /healthz)."""
    heartbeat_record()


@shared_task
def ingest_batches(batch_id: int | None = None) -> int:
    """Processes what is pending, oldest first and many requests at a time: sent after each accepted
    request (``batch_id`` names it, for the logs) and by beat's sweep."""
    return batches_process()


@shared_task
def import_run(job_id: int) -> None:
    """Loads an uploaded CSV in the background (progress shows on the import page)."""
    run_import(job_id=job_id)
