from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class JourneysConfig(AppConfig):
    name = "journeys"
    verbose_name = _("Journeys")

    def ready(self):
        from cdp.signals import customers_changed
        from journeys.signals import journeys_reading_answer, queue_events_match
        from segments.graph import node_users_asked

        customers_changed.connect(queue_events_match, dispatch_uid="journeys.queue_events_match")
        node_users_asked.connect(journeys_reading_answer, dispatch_uid="journeys.journeys_reading")
