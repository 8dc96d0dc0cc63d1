from dataclasses import dataclass

from django.conf import settings
from django.contrib.postgres.indexes import OpClass
from django.db import models
from django.db.models.functions import Upper
from django.utils.translation import gettext_lazy as _


class PlainJSONField(models.JSONField):
    """JSON kept as text (PostgreSQL ``json``, not ``jsonb``): for payloads written once and read back
    whole, where ``jsonb``'s parsing on the way in and printing on the way out is wasted work."""

    def db_type(self, connection) -> str:
        return "json"

    def from_db_value(self, value, expression, connection):
        # psycopg decodes ``json`` itself (Django only has it leave ``jsonb`` as text).
        return value if not isinstance(value, str) else super().from_db_value(value, expression, connection)


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


class ApiToken(models.Model):
    """A user's API token, kept as its SHA-256: the key itself is shown once, when it is made."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_token")
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8)  # the key's first characters, to recognise it by
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user_id})"


class CustomerScope(models.TextChoices):
    """Which customers a role shows: the widest of a user's roles applies."""

    OWN = "own", _("Their own customers")
    TEAM = "team", _("Their team's customers")
    ALL = "all", _("All customers")


class StaffRole(models.Model):
    """What a role (a Django group) holds besides its capabilities. A group without this row (the
    built-in roles before any admin edits them) shows all customers, as every role did before."""

    group = models.OneToOneField(
        "auth.Group", on_delete=models.CASCADE, primary_key=True, related_name="staff_role"
    )
    scope = models.CharField(max_length=10, choices=CustomerScope.choices, default=CustomerScope.ALL)
    description = models.CharField(max_length=300, blank=True)

    def __str__(self) -> str:
        return self.group.name


class Team(models.Model):
    """A group of staff: a role scoped to the team shows the customers any member owns."""

    name = models.CharField(max_length=100, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class StaffProfile(models.Model):
    """What the product knows about a staff user beyond Django's user: their team."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="staff_profile"
    )
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="members")

    def __str__(self) -> str:
        return f"profile of {self.user_id}"


class PendingWakeup(models.Model):
    """A wake-up task queued and not yet started, by its key (``cdp.wakeups``): while its row stands
    no second one is queued, so a slow queue never fills with copies of the same sweep."""

    key = models.CharField(max_length=200, primary_key=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.key


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


# Event names the product records itself (sends and receipts, segment and tag changes, stage changes,
# staff tasks, contact-policy decisions, journey steps) and the consent "yes": a client-side source
# may not send them, since forging them would start journeys or claim consent for someone else.
RESERVED_EVENT_NAMES = frozenset({"Subscribed", "stage_changed", "trait_set", "task_created", "task_closed"})
RESERVED_EVENT_PREFIXES = ("message_", "segment_", "tag_", "task_", "contact_policy_", "journey_")


def event_name_reserved(name: str) -> bool:
    return name in RESERVED_EVENT_NAMES or name.startswith(RESERVED_EVENT_PREFIXES)


@dataclass(frozen=True)
class SourceTrust:
    """What a source of one kind may assert. Every reader (the tracking API, identity resolution,
    consent, the rate limits, the README's table) takes it from ``Source.TRUST``."""

    # Runs on the customer's own device (its write key is public, shipped in a page or an app).
    client_side: bool
    # May set a customer's consent to "subscribed" (anyone may unsubscribe).
    may_subscribe: bool
    # May send the reserved event names above.
    may_send_reserved_events: bool
    # Identifier types it may not merge customers by: they are kept as ``unverified_<type>`` traits
    # until a trusted source (a server, an import, the open API, a channel's callback, a verified form)
    # asserts them. A verified form will record through a trusted source of its own, as channel
    # callbacks do: the visitor's anonymousId with the phone it checked joins the two profiles.
    unverified_identifiers: frozenset[str] = frozenset()
    # Limited per client address too (a browser or a phone is one address among many; a server is
    # one address sending everything).
    limited_per_address: bool = False


CLIENT_SIDE = SourceTrust(
    client_side=True,
    may_subscribe=False,
    may_send_reserved_events=False,
    unverified_identifiers=frozenset({"phone", "email", "id_number", "user_id"}),
    limited_per_address=True,
)
TRUSTED = SourceTrust(client_side=False, may_subscribe=True, may_send_reserved_events=True)


class Source(models.Model):
    """A touch point that sends data: a website, an app, a mini program, a server, WeChat, an import."""

    class Kind(models.TextChoices):
        WEB = "web", _("Website")
        APP = "app", _("Mobile app")
        MINI_PROGRAM = "mini_program", _("Mini program")
        SERVER = "server", _("Server")
        WECHAT_OA = "wechat_oa", _("WeChat Official Account")
        WECOM = "wecom", _("WeCom")
        IMPORT = "import", _("Import")

    # What each kind may assert (see SourceTrust); a kind missing here is treated as client-side.
    TRUST: dict[str, SourceTrust] = {
        Kind.WEB: CLIENT_SIDE,
        Kind.APP: CLIENT_SIDE,
        Kind.MINI_PROGRAM: CLIENT_SIDE,
        Kind.SERVER: TRUSTED,
        Kind.WECHAT_OA: TRUSTED,
        Kind.WECOM: TRUSTED,
        Kind.IMPORT: TRUSTED,
    }

    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    write_key = models.CharField(max_length=64, unique=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    event_count = models.BigIntegerField(default=0)
    last_event_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def trust(self) -> SourceTrust:
        return self.TRUST.get(self.kind, CLIENT_SIDE)


class Customer(models.Model):
    """One person, however many channels they came through. A merged customer points to the survivor."""

    name = models.CharField(max_length=200, blank=True)
    traits = models.JSONField(default=dict, blank=True)
    # When each trait last changed, so a late event never overwrites a newer value.
    traits_updated_at = models.JSONField(default=dict, blank=True)
    # Both indexed only where set (see Meta): most customers have neither, and every update of a
    # customer's last-seen time (each ingest group) would otherwise add an entry to each index.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="customers",
        db_index=False,
    )
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    first_seen_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # Name search by prefix (family name first), and the list's default order, active only.
            models.Index(
                OpClass(Upper("name"), name="varchar_pattern_ops"),
                name="customer_name_prefix",
                condition=models.Q(merged_into__isnull=True),
            ),
            models.Index(
                models.F("last_seen_at").desc(nulls_last=True),
                "id",
                name="customer_recent",
                condition=models.Q(merged_into__isnull=True),
            ),
            models.Index(fields=["owner"], name="customer_owner", condition=models.Q(owner__isnull=False)),
            models.Index(
                fields=["merged_into"],
                name="customer_merged_into",
                condition=models.Q(merged_into__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.name or f"#{self.pk}"


class Identity(models.Model):
    """A normalised identifier of a customer: ``(type, value)`` belongs to one customer at most."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="identities")
    type = models.CharField(max_length=40)
    value = models.CharField(max_length=255)
    # Regulated values (ID numbers) are stored hashed in ``value`` and encrypted here.
    encrypted_value = models.TextField(blank=True)
    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    first_seen_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["type", "value"], name="identity_unique_type_value")]
        # Staff search by a value without knowing its type (an openid, a user id).
        indexes = [models.Index(fields=["value"], name="identity_value")]
        verbose_name_plural = "identities"

    def __str__(self) -> str:
        return f"{self.type}:{self.value}"


class Event(models.Model):
    """Everything a customer did or was sent, one table; deduplication lives in ``EventKey``."""

    # No foreign-key constraints in the database (decision record 0014): checking them cost a lookup
    # and a row lock per stored event. The ingest writer creates or locks the customers in the same
    # transaction as their events; deleting through Django still cascades.
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="events", db_index=False, db_constraint=False
    )
    # Who the event was first attributed to, so that an unmerge can move it back.
    origin_customer_id = models.BigIntegerField()
    source = models.ForeignKey(
        Source, null=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    kind = models.CharField(max_length=10)  # track, identify, page, screen, group, alias
    name = models.CharField(max_length=200)
    channel = models.CharField(max_length=20, choices=Source.Kind.choices)
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField()
    message_id = models.CharField(max_length=200)
    properties = models.JSONField(default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True)
    amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["customer", "-timestamp"], name="event_timeline"),
            models.Index(fields=["name", "timestamp"], name="event_name_time"),
        ]

    def __str__(self) -> str:
        return f"{self.name} @ {self.timestamp:%Y-%m-%d %H:%M}"


class EventKey(models.Model):
    """``(source, messageId)`` seen once: a replayed request stores nothing twice."""

    # No index of its own: the unique constraint's index starts with the source (one index fewer to
    # update for every event stored).
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+", db_index=False)
    message_id = models.CharField(max_length=200)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "message_id"], name="event_key_unique")]

    def __str__(self) -> str:
        return self.message_id


class IngestBatch(models.Model):
    """A request's accepted events, stored before the 200 goes out, until the ingest workers have
    processed them (then the row is deleted in the same transaction) or people discard them."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    received_at = models.DateTimeField()
    events = PlainJSONField()
    event_count = models.PositiveIntegerField()
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"batch {self.pk} ({self.event_count} events)"


class CustomerEventStats(models.Model):
    """Per customer and event name: first and last time, count, sum of amounts (rules read these)."""

    # Derived data, rebuilt from the events when needed (``rollups_rebuild``): no database foreign key,
    # like the events themselves (decision record 0014).
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="event_stats", db_index=False, db_constraint=False
    )
    name = models.CharField(max_length=200)
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()
    count = models.BigIntegerField()
    amount_sum = models.DecimalField(max_digits=16, decimal_places=2, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "name"], name="customer_event_stats_unique")
        ]
        indexes = [models.Index(fields=["name", "last_at"], name="stats_name_last_at")]

    def __str__(self) -> str:
        return f"{self.customer_id}:{self.name}={self.count}"


class CustomerEventDaily(models.Model):
    """Per customer, event name and day: how many (windowed rules read these)."""

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    name = models.CharField(max_length=200)
    day = models.DateField()
    count = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "name", "day"], name="customer_event_daily_unique")
        ]
        # Who did an event on a given day: the customers a "within the last N days" window lets go
        # of today, found by a range of this index rather than a scan.
        indexes = [models.Index(fields=["name", "day"], name="event_daily_name_day")]

    def __str__(self) -> str:
        return f"{self.customer_id}:{self.name}@{self.day}={self.count}"


class ChannelEventDaily(models.Model):
    """Per day, channel and event name: how many (reports read these)."""

    day = models.DateField()
    channel = models.CharField(max_length=20)
    name = models.CharField(max_length=200)
    count = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "channel", "name"], name="channel_event_daily_unique")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.channel}:{self.name}={self.count}"


class ChannelHourOfWeek(models.Model):
    """Per channel and hour of the week (0 = Monday 00:00, company time zone): how many events."""

    channel = models.CharField(max_length=20)
    hour_of_week = models.PositiveSmallIntegerField()
    count = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "hour_of_week"], name="channel_hour_of_week_unique")
        ]

    def __str__(self) -> str:
        return f"{self.channel}@{self.hour_of_week}={self.count}"


class MergeLog(models.Model):
    """A merge of one customer into another: what moved, so that staff can undo it."""

    survivor = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="merges_in")
    merged = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="merges_out")
    identity_ids = models.JSONField(default=list)
    # What else came with the merged customer, so that undoing the merge gives it back.
    note_ids = models.JSONField(default=list)
    consents = models.JSONField(default=list)  # [{channel, status, changed_at, origin}]
    reason = models.CharField(max_length=200)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    undone_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.merged_id} -> {self.survivor_id}"


class Consent(models.Model):
    """Whether a customer may be contacted on a channel, since when and where that was said."""

    class Status(models.TextChoices):
        SUBSCRIBED = "subscribed", _("Subscribed")
        UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="consents")
    channel = models.CharField(max_length=20)
    status = models.CharField(max_length=20, choices=Status.choices)
    changed_at = models.DateTimeField()
    origin = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "channel"], name="consent_unique_channel")]

    def __str__(self) -> str:
        return f"{self.customer_id}:{self.channel}={self.status}"


class Note(models.Model):
    """A staff member's note on a customer."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.text[:50]


class IdentityRule(models.Model):
    """An admin's override of an identity type's merge rule (the defaults live in cdp.identity)."""

    type = models.CharField(max_length=40, unique=True)
    priority = models.PositiveSmallIntegerField()
    max_per_customer = models.PositiveSmallIntegerField(null=True, blank=True)
    blocked_values = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.type


class MergeReview(models.Model):
    """Two customers that share an identifier but may not merge under the rules: staff decide."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        MERGED = "merged", _("Merged")
        KEPT_APART = "kept_apart", _("Kept apart")

    first = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    second = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=300)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["first", "second"], condition=models.Q(status="open"), name="merge_review_open_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.first_id} ~ {self.second_id}"


class ImportJob(models.Model):
    """A CSV of customers or events being loaded in the background, with its progress and rejects."""

    class Kind(models.TextChoices):
        CUSTOMERS = "customers", _("Customers")
        EVENTS = "events", _("Events")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    kind = models.CharField(max_length=20, choices=Kind.choices)
    file_name = models.CharField(max_length=255)
    # The uploader's language, so the rejected rows report speaks it.
    language = models.CharField(max_length=10, default="zh-hans")
    content = models.TextField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    accepted_rows = models.PositiveIntegerField(default=0)
    rejected_rows = models.PositiveIntegerField(default=0)
    rejects = models.TextField(blank=True)  # CSV: row number, reason, the original row
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.file_name

    @property
    def percent(self) -> int:
        return int(100 * self.processed_rows / self.total_rows) if self.total_rows else 0


class CustomerRole(models.Model):
    """A role a customer can hold (a person may be both supplier and buyer), with the metrics the
    profile shows for it. A customer holds a role when its ``role`` trait names the role's key."""

    key = models.SlugField(max_length=40, unique=True)
    label = models.CharField(max_length=100)
    # Event names whose count (and amount, when they carry one) the profile shows for this role.
    key_metrics = models.JSONField(default=list, blank=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "key"]

    def __str__(self) -> str:
        return self.label
