from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils.translation import gettext_lazy as _

from cdp.models import Customer


class TagGroup(models.Model):
    """Tags in groups ("Interests", "Channel"), optionally meant for some customer roles only."""

    name = models.CharField(max_length=100, unique=True)
    color = models.CharField(max_length=7, default="#64748b")
    # Customer role keys (supplier, buyer, ...) whose profiles show this group; empty: every profile.
    roles = models.JSONField(default=list, blank=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    class Kind(models.TextChoices):
        STATIC = "static", _("Set by people, imports, API and journeys")
        DYNAMIC = "dynamic", _("Defined by a rule")

    # Rules refer to tags by key, so a tag can be renamed without touching them.
    key = models.CharField(max_length=100, unique=True)
    name = models.CharField(max_length=100)
    group = models.ForeignKey(TagGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="tags")
    color = models.CharField(max_length=7, blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.STATIC)
    rule = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    @property
    def display_color(self) -> str:
        return self.color or (self.group.color if self.group else "#64748b")


class CustomerTag(models.Model):
    class Origin(models.TextChoices):
        STAFF = "staff", _("Staff")
        IMPORT = "import", _("Import")
        API = "api", _("API")
        JOURNEY = "journey", _("Journey")
        RULE = "rule", _("Rule")

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="tags")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="holders")
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.STAFF)
    added_at = models.DateTimeField(auto_now_add=True)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "tag"], name="customer_tag_unique")]
        # The unique index answers "the tags of this customer"; rules ask "who has this tag".
        indexes = [models.Index(fields=["tag", "customer"], name="customer_tag_by_tag")]

    def __str__(self) -> str:
        return f"{self.customer_id}:{self.tag_id}"


class Segment(models.Model):
    class Kind(models.TextChoices):
        DYNAMIC = "dynamic", _("Kept up to date by its rule")
        STATIC = "static", _("A fixed list (uploaded)")

    key = models.CharField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.DYNAMIC)
    rule = models.JSONField(null=True, blank=True)
    member_count = models.PositiveIntegerField(default=0)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


class SegmentMember(models.Model):
    """Materialised membership: who is in a segment now, and since when.

    Rows are derived from the rule and written set-based, hundreds of thousands at a time, so they
    carry no database foreign keys: the per-row checks at commit cost more than the change itself
    (docs/decisions/0012). Segments are deleted through the ORM, which deletes their members; customers
    are never deleted (a merge keeps the row and moves its memberships)."""

    # Lookups by segment use the unique pair's index, which starts with the segment.
    segment = models.ForeignKey(
        Segment, on_delete=models.CASCADE, related_name="members", db_index=False, db_constraint=False
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="segment_memberships", db_constraint=False
    )
    entered_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["segment", "customer"], name="segment_member_unique")]

    def __str__(self) -> str:
        return f"{self.segment_id}:{self.customer_id}"


class RefreshRequest(models.Model):
    """A customer whose segments, tags, stage and score must be evaluated again (new events, a tag, a
    merge). Written in the transaction that changed them, so the request survives a lost task; a
    worker takes every pending request at once, so a burst of small changes costs one refresh."""

    customer_id = models.BigIntegerField(primary_key=True)
    requested_at = models.DateTimeField()

    def __str__(self) -> str:
        return str(self.customer_id)


class MembershipChange(models.Model):
    """Who entered and who left a segment at one refresh. The membership itself changes at once; the
    ``segment_entered`` / ``segment_exited`` events on the customers' timelines follow in chunks
    (``events_written`` says how far), so a change of 400,000 customers commits in seconds."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="changes")
    changed_at = models.DateTimeField()
    entered = ArrayField(models.BigIntegerField(), default=list)
    exited = ArrayField(models.BigIntegerField(), default=list)
    # The segment's size right after the change: its size history.
    member_count = models.PositiveIntegerField(null=True)
    events_written = models.PositiveIntegerField(default=0)
    events_done = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(
                fields=["id"], name="membership_change_pending", condition=models.Q(events_done=False)
            )
        ]

    def __str__(self) -> str:
        return f"{self.segment_id} +{len(self.entered)} -{len(self.exited)}"


class LifecycleStage(models.Model):
    """One step of the customer lifecycle ("prospect", "nurturing", "customer", "loyal"). Stages are
    ordered; each customer is in the furthest stage whose rule they match, or in none."""

    key = models.CharField(max_length=100, unique=True)
    name = models.CharField(max_length=100)
    color = models.CharField(max_length=7, default="#2563eb")
    position = models.PositiveIntegerField(default=0)
    rule = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return self.name


class CustomerStage(models.Model):
    """The stage a customer is in now, and since when (every move is a ``stage_changed`` event)."""

    customer = models.OneToOneField(
        Customer, primary_key=True, on_delete=models.CASCADE, related_name="stage"
    )
    stage = models.ForeignKey(LifecycleStage, on_delete=models.CASCADE, related_name="holders")
    entered_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["stage", "-entered_at"], name="customer_stage_by_stage")]

    def __str__(self) -> str:
        return f"{self.customer_id}:{self.stage_id}"


class ManualStage(models.Model):
    """A stage a person or a journey set for a customer: the lowest stage the customer can be in.
    Rules still move them further along the path, but never back before it; setting an earlier
    stage replaces it (and lets the rules decide again from there)."""

    customer = models.OneToOneField(
        Customer, primary_key=True, on_delete=models.CASCADE, related_name="manual_stage"
    )
    stage = models.ForeignKey(LifecycleStage, on_delete=models.CASCADE, related_name="manual_holders")
    set_at = models.DateTimeField()
    # Who set it: "journey <id>", a user's name.
    origin = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.customer_id}≥{self.stage_id}"


class ScoringRule(models.Model):
    """Points for an event ("+10 for each order over 500"), at most ``cap`` points per period and
    customer from this rule, each award lapsing after ``expires_after_days`` (the score's decay)."""

    class Period(models.TextChoices):
        DAY = "day", _("per day")
        WEEK = "week", _("per week")
        MONTH = "month", _("per month")

    name = models.CharField(max_length=200)
    event = models.CharField(max_length=200)
    where = models.JSONField(default=list, blank=True)  # property filters, as in event rules
    points = models.IntegerField()
    cap = models.PositiveIntegerField(null=True, blank=True)
    cap_period = models.CharField(max_length=5, choices=Period.choices, default=Period.DAY)
    expires_after_days = models.PositiveIntegerField(null=True, blank=True)
    active = models.BooleanField(default=True)
    # Rules do not rewrite history: only events stored after the rule was made earn its points.
    counts_after_event_id = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name


class ScoreEntry(models.Model):
    """The score's ledger: points one event earned under one rule, or points a person gave or took by
    hand (no rule, no event: ``adjusted_by`` and ``reason`` say who and why), and when they lapse."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="score_entries")
    rule = models.ForeignKey(ScoringRule, null=True, on_delete=models.SET_NULL, related_name="entries")
    rule_name = models.CharField(max_length=200)
    event_id = models.BigIntegerField(null=True)
    event_name = models.CharField(max_length=200)
    points = models.IntegerField()
    happened_at = models.DateTimeField()
    awarded_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    adjusted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=200, blank=True, db_default="")  # "" also for raw inserts

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "event_id"],
                name="score_entry_once",
                condition=models.Q(event_id__isnull=False),
            )
        ]
        indexes = [
            models.Index(fields=["customer", "-happened_at"], name="score_entry_customer"),
            # The beat tick finds the awards that lapsed since its last run by a range of this index.
            models.Index(
                fields=["expires_at"], name="score_entry_expiry", condition=models.Q(expires_at__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.points:+d} {self.rule_name}"


class CustomerScore(models.Model):
    customer = models.OneToOneField(
        Customer, primary_key=True, on_delete=models.CASCADE, related_name="score"
    )
    points = models.IntegerField(default=0)
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.points}"


class RuleClock(models.Model):
    """How far the beat tick has got: awards lapsed up to ``expired_until``; time-window edges
    crossed up to ``edges_day`` (one row)."""

    expired_until = models.DateTimeField()
    edges_day = models.DateField()

    def __str__(self) -> str:
        return f"{self.expired_until} / {self.edges_day}"
