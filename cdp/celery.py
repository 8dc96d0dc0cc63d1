import os
import time

from celery import Celery
from celery.signals import before_task_publish, task_prerun, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")

# One queue per concern, so each can get its own workers when the load grows.
# Event matching has its own queue: a backlog of it never holds up the engine's tick (due delays),
# and a worker that does not take it still starts journeys through the tick's sweep, 30 s later.
# The sandbox providers post their receipts from a queue of their own, as a real provider would
# from its own servers: a slow run never holds up the heartbeat or a refresh.
QUEUES = ("default", "ingest", "segments", "engine", "matching", "dispatch", "sandbox")

app = Celery("cdp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _collector_tune(**_kwargs):
    # In the main process before it forks its children, so that they share the frozen objects.
    from cdp.gctune import collector_tune

    collector_tune()


@before_task_publish.connect
def _stamp_enqueued_at(headers=None, **_kwargs):
    # When the task was queued: workers measure their wait from it, /healthz the backlog's age.
    from cdp.queues import ENQUEUED_HEADER

    if headers is not None:
        headers.setdefault(ENQUEUED_HEADER, time.time())


@task_prerun.connect
def _task_started(task=None, **_kwargs):
    from cdp.queues import ENQUEUED_HEADER, started_after, wait_record
    from cdp.wakeups import wakeup_started

    request = task.request
    wakeup_started(request)
    waited = started_after(
        enqueued_at=getattr(request, ENQUEUED_HEADER, None), eta=request.eta, now=time.time()
    )
    queue = (request.delivery_info or {}).get("routing_key")
    if waited is not None and queue:
        wait_record(queue=queue, seconds=waited)
