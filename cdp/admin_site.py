from django.contrib import admin
from django.contrib.admin.apps import AdminConfig


class CdpAdminSite(admin.AdminSite):
    """Django's admin, kept for operators; every page also needs the ``manage_users`` capability."""

    site_header = "CDP operations"

    def admin_view(self, view, cacheable=False):
        # Imported here: this module is loaded with the app registry, before models are ready.
        from cdp.access import capability_required

        return capability_required("manage_users")(super().admin_view(view, cacheable))


class CdpAdminConfig(AdminConfig):
    default_site = "cdp.admin_site.CdpAdminSite"
