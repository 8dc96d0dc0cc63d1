from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SegmentsConfig(AppConfig):
    name = "segments"
    verbose_name = _("Segments and tags")

    def ready(self):
        from cdp.signals import customers_changed
        from segments.signals import queue_refresh

        customers_changed.connect(queue_refresh, dispatch_uid="segments.queue_refresh")
