from django.conf import settings as django_settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class ChannelAccount(models.Model):
    """An account at a provider (or a sandbox) that messages of one channel kind go out through."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        PAUSED = "paused", _("Paused")

    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=60)
    channel = models.CharField(max_length=30)
    # Settings that are not secret; the secret ones are only in ``secrets_encrypted``.
    settings = models.JSONField(default=dict, blank=True)
    secrets_encrypted = models.TextField(blank=True)
    rate_per_second = models.FloatField(_("sends per second"), default=100)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    paused_reason = models.TextField(blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def channel_label(self) -> str:
        from connectors.protocol import Channel

        return Channel.LABELS.get(self.channel, self.channel)

    @property
    def kind_label(self) -> str:
        from connectors.registry import kind_get

        try:
            return kind_get(self.kind).label
        except LookupError:
            return self.kind


class RateBucket(models.Model):
    """The account's token bucket: one limit that every dispatching worker takes from."""

    account = models.OneToOneField(ChannelAccount, on_delete=models.CASCADE, primary_key=True)
    tokens = models.FloatField(default=0)
    refilled_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"bucket {self.account_id}"


class PhoneDailySends(models.Model):
    """How many messages went to one phone number on one day (the project's time zone), per channel,
    whichever customers hold the number: the dispatcher's daily cap (``PHONE_DAILY_SEND_CAP``) counts
    here, so a flood of customers made up around one number cannot bomb it."""

    channel = models.CharField(max_length=20)
    recipient = models.CharField(max_length=64)
    day = models.DateField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "recipient", "day"], name="phone_daily_sends_once")
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.recipient} {self.day}: {self.count}"


class MessageTemplate(models.Model):
    """What to send on a channel kind, with variables from traits and event properties."""

    key = models.SlugField(_("key"), max_length=100, unique=True)
    name = models.CharField(_("name"), max_length=200)
    channel = models.CharField(_("channel"), max_length=30)
    # Per channel: {"subject", "text", "html"} / {"text"} / {"template_code", "params"} /
    # {"template_id", "url", "fields"} / {"script_id", "params"} / {"payload"}.
    body = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Message(models.Model):
    """One send to one customer: written first (the outbox), then dispatched, then followed."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        HELD = "held", _("Held")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")
        SKIPPED = "skipped", _("Skipped")
        UNKNOWN = "unknown", _("Unknown")

    idempotency_key = models.CharField(max_length=200, unique=True)
    account = models.ForeignKey(ChannelAccount, on_delete=models.PROTECT, related_name="messages")
    channel = models.CharField(max_length=30)
    customer = models.ForeignKey("cdp.Customer", null=True, on_delete=models.SET_NULL, related_name="+")
    recipient = models.CharField(max_length=255, blank=True)
    template = models.ForeignKey(
        MessageTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    content = models.JSONField(default=dict)
    origin = models.CharField(max_length=20, default="api")  # journey, test, staff, api
    journey_id = models.BigIntegerField(null=True, blank=True)
    enrollment_id = models.BigIntegerField(null=True, blank=True)
    node_id = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    reason = models.TextField(blank=True)
    due_at = models.DateTimeField()
    # While "sending": who claimed it and until when; a lease that runs out means the claimant died.
    claim = models.CharField(max_length=40, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    provider_message_id = models.CharField(max_length=200, blank=True)
    provider_answer = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    replied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["account", "due_at", "id"],
                name="message_due",
                condition=models.Q(status="queued"),
            ),
            models.Index(fields=["lease_until"], name="message_leased", condition=models.Q(status="sending")),
            # A journey's page: its steps' messages still waiting, and since when.
            models.Index(
                fields=["journey_id", "node_id", "due_at"],
                name="message_journey_waiting",
                condition=models.Q(status__in=["queued", "held"], journey_id__isnull=False),
            ),
            models.Index(fields=["account", "provider_message_id"], name="message_provider_id"),
            # The Messages page: newest first (by id), filtered by customer, status or account.
            models.Index(fields=["customer", "-id"], name="message_customer"),
            models.Index(fields=["status", "-id"], name="message_status"),
            models.Index(fields=["account", "-id"], name="message_account"),
            # The Channels page's sent and failed counts of the last day.
            models.Index(
                fields=["sent_at"], name="message_sent_at", condition=models.Q(sent_at__isnull=False)
            ),
            models.Index(
                fields=["failed_at"], name="message_failed_at", condition=models.Q(failed_at__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"message {self.pk} ({self.status})"

    @property
    def channel_label(self) -> str:
        from connectors.protocol import Channel

        return Channel.LABELS.get(self.channel, self.channel)


class MessageLog(models.Model):
    """A message's life, one row per step: queued, claimed, the provider's answers, receipts, clicks."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="log")
    at = models.DateTimeField()
    step = models.CharField(max_length=20)
    status = models.CharField(max_length=10, blank=True)
    detail = models.TextField(blank=True)
    raw = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["message", "at"], name="message_log_message")]

    def __str__(self) -> str:
        return f"{self.message_id} {self.step}"


class InboundCallback(models.Model):
    """A provider's callback as received (raw), once per account and body: a replay is harmless.
    Of a rejected one only the first 2 KB of its body are kept, with its hash and size; rejected
    callbacks are deleted after ``CALLBACK_REJECTED_RETENTION_DAYS``."""

    account = models.ForeignKey(ChannelAccount, on_delete=models.CASCADE, related_name="+")
    body_hash = models.CharField(max_length=64)
    body = models.TextField()
    body_size = models.PositiveIntegerField(default=0)
    headers = models.JSONField(default=dict)
    received_at = models.DateTimeField(auto_now_add=True)
    accepted = models.BooleanField(default=True)
    problem = models.TextField(blank=True)
    receipt_count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "body_hash"],
                condition=models.Q(accepted=True),
                name="inbound_callback_once",
            )
        ]
        indexes = [
            models.Index(
                fields=["received_at"],
                condition=models.Q(accepted=False),
                name="inbound_callback_rejected_at",
            )
        ]

    def __str__(self) -> str:
        return f"callback {self.pk}"


class TrackedLink(models.Model):
    """A link in a message, rewritten to ``/l/<code>``: a click is recorded, then redirected."""

    code = models.CharField(max_length=16, unique=True)
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="links")
    url = models.URLField(max_length=2000)
    clicks = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return self.code


class SandboxDelivery(models.Model):
    """What a sandbox provider received: the sandbox outbox. One row per idempotency key, with how
    many requests carried it (a provider honouring idempotency keys sends it once)."""

    account = models.ForeignKey(ChannelAccount, on_delete=models.CASCADE, related_name="+")
    idempotency_key = models.CharField(max_length=200)
    provider_message_id = models.CharField(max_length=200)
    recipient = models.CharField(max_length=255)
    content = models.JSONField(default=dict)
    answer = models.TextField()
    accepted = models.BooleanField()
    requests = models.PositiveIntegerField(default=1)
    received_at = models.DateTimeField()
    receipt_status = models.CharField(max_length=20, blank=True)
    receipt_due_at = models.DateTimeField(null=True, blank=True)
    receipt_posted_at = models.DateTimeField(null=True, blank=True)
    receipt_attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "idempotency_key"], name="sandbox_delivery_once")
        ]
        indexes = [
            models.Index(
                fields=["receipt_due_at"],
                name="sandbox_receipt_due",
                condition=models.Q(receipt_posted_at__isnull=True, receipt_due_at__isnull=False),
            ),
            models.Index(fields=["account", "-received_at"], name="sandbox_recent"),
        ]

    def __str__(self) -> str:
        return f"sandbox {self.provider_message_id}"
