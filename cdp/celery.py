import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")

# One queue per concern, so each can get its own workers when the load grows.
# Event matching has its own queue: a backlog of it never holds up the engine's tick (due delays),
# and a worker that does not take it still starts journeys through the tick's sweep, 30 s later.
QUEUES = ("default", "ingest", "segments", "engine", "matching", "dispatch")

app = Celery("cdp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _collector_tune(**_kwargs):
    # In the main process before it forks its children, so that they share the frozen objects.
    from cdp.gctune import collector_tune

    collector_tune()
