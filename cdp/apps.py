from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CdpConfig(AppConfig):
    name = "cdp"
    verbose_name = _("Customer data")

    def ready(self):
        from cdp import (  # noqa: F401 (connect the login log and the source cache, register the checks)
            checks,
            signals,
        )
