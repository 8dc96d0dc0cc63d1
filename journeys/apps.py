from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class JourneysConfig(AppConfig):
    name = "journeys"
    verbose_name = _("Journeys")

    def ready(self):
        from cdp.signals import customers_changed
        from journeys.signals import queue_events_match

        customers_changed.connect(queue_events_match, dispatch_uid="journeys.queue_events_match")
