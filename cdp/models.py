from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Capability(models.Model):
    """Holds no rows: it only gives the capability permissions (see ``cdp.access``) a home."""

    class Meta:
        managed = False
        default_permissions = ()

    def __str__(self) -> str:
        return "capability"


class Organization(models.Model):
    """The company using this installation (one row)."""

    name = models.CharField(_("name"), max_length=200)
    industry = models.CharField(_("industry"), max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


class BeatHeartbeat(models.Model):
    """The last time a beat-scheduled task ran on a worker (one row); health reads its age."""

    beat_at = models.DateTimeField()
    worker = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"heartbeat at {self.beat_at:%Y-%m-%d %H:%M:%S}"


class AuditEntry(models.Model):
    """Who changed what: users, roles, journeys, segments, tags, credentials."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=100)
    target_type = models.CharField(max_length=100)
    target_id = models.CharField(max_length=100)
    target_label = models.CharField(max_length=300)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self) -> str:
        return f"{self.action} {self.target_label}"
