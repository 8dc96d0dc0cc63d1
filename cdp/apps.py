from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CdpConfig(AppConfig):
    name = "cdp"
    verbose_name = _("Customer data")

    def ready(self):
        from cdp import signals  # noqa: F401 (connects the login log and the source cache)
