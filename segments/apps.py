from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SegmentsConfig(AppConfig):
    name = "segments"
    verbose_name = _("Segments and tags")

    def ready(self):
        from cdp.signals import customers_changed, customers_merged, customers_unmerged
        from segments.merges import merge_follow, unmerge_follow
        from segments.signals import queue_refresh

        customers_changed.connect(queue_refresh, dispatch_uid="segments.queue_refresh")
        customers_merged.connect(merge_follow, dispatch_uid="segments.merge_follow")
        customers_unmerged.connect(unmerge_follow, dispatch_uid="segments.unmerge_follow")
