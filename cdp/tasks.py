from celery import shared_task

from cdp.services import heartbeat_record


@shared_task(queue="default")
def heartbeat() -> None:
    """Scheduled by beat; its timestamp proves beat and a worker are both alive (see /healthz)."""
    heartbeat_record()
