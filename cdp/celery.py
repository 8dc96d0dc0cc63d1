import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")

# One queue per concern, so each can get its own workers when the load grows.
QUEUES = ("default", "ingest", "segments", "engine", "dispatch")

app = Celery("cdp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
