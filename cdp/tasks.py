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
    """Processes one accepted request's batch (or, from beat, whatever is still pending)."""
    return batches_process(batch_ids=[batch_id] if batch_id is not None else None)


@shared_task
def import_run(job_id: int) -> None:
    """Loads an uploaded CSV in the background (progress shows on the import page)."""
    run_import(job_id=job_id)
