"""Journeys, their immutable published versions, and the customers going through them.

An enrollment is one customer in one version of a journey: the node it is at, how many times it has
been there (``visit``), and when the engine should look at it again (``wake_at``). Each node an
enrollment passes through is a ``Step``, unique per (enrollment, node, visit): the engine inserts the
step before doing the node's work, in the same transaction, so a replayed tick finds the step and
follows its recorded outcome instead of doing the work twice.
"""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils.translation import gettext_lazy as _


class Journey(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        ACTIVE = "active", _("Active")
        PAUSED = "paused", _("Paused")
        ARCHIVED = "archived", _("Archived")

    class EntryPolicy(models.TextChoices):
        ONCE = "once", _("Once ever")
        AFTER_COOLDOWN = "after_cooldown", _("Again after a cooldown")
        ONCE_PER_KEY = "once_per_key", _("Once per key")

    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    # What the canvas edits; publishing copies it into a new immutable version.
    draft_graph = models.JSONField(default=dict, blank=True)
    # Counts the draft's saves: a save names the revision it started from, so two people editing one
    # draft never silently overwrite each other.
    draft_revision = models.PositiveIntegerField(default=0)
    entry_policy = models.CharField(max_length=20, choices=EntryPolicy.choices, default=EntryPolicy.ONCE)
    cooldown_seconds = models.PositiveIntegerField(null=True, blank=True)
    # For "once per key": the trigger event's property naming the key (an order id, a cart id).
    entry_key_property = models.CharField(max_length=200, blank=True)
    # Higher runs first when the contact policy has to choose between journeys.
    priority = models.SmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-priority", "name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def live_version(self):
        """The version new customers enter (the latest published one)."""
        return self.versions.order_by("-number").first()


class JourneyVersion(models.Model):
    """A published graph. Never changed after it is written: customers in flight run on it."""

    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    graph = models.JSONField()
    # Trigger event names of this version (``graph`` read once at publish), so arriving events find
    # the journeys they start without reading every graph.
    trigger_events = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    published_at = models.DateTimeField()
    # What changed, in the publisher's words.
    note = models.CharField(max_length=500, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["journey", "number"], name="journey_version_number")]
        indexes = [models.Index(fields=["journey", "-number"], name="journey_version_latest")]

    def __str__(self) -> str:
        return f"{self.journey_id} v{self.number}"


class Enrollment(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", _("In the journey")
        COMPLETED = "completed", _("Completed")
        EXITED = "exited", _("Exited")
        FAILED = "failed", _("Failed")

    class Phase(models.TextChoices):
        # The node's work has not been done for this visit yet.
        ENTER = "enter", _("Entering")
        # The node's work is done and it waits (for a time or an event); waking asks it again.
        RESUME = "resume", _("Waiting")

    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="enrollments")
    version = models.ForeignKey(JourneyVersion, on_delete=models.PROTECT, related_name="enrollments")
    customer = models.ForeignKey("cdp.Customer", on_delete=models.CASCADE, related_name="+")
    # Which entry this is under the journey's policy ("once", "key:<value>", "event:<id>"): unique,
    # so the same trigger event seen twice enrolls nobody twice.
    entry_key = models.CharField(max_length=300)
    node_id = models.CharField(max_length=100)
    visit = models.PositiveIntegerField(default=1)
    # node id -> how many times this enrollment has entered it (loops make a node's visits count up).
    visits = models.JSONField(default=dict)
    phase = models.CharField(max_length=6, choices=Phase.choices, default=Phase.ENTER)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    # When the engine looks at it next (null: only an event wakes it).
    wake_at = models.DateTimeField(null=True, blank=True)
    # What it waits for at its node: event names, and optionally a property value they must carry
    # (``{"property": "cart_id", "value": "c-42", "since": "..."}``).
    waiting_events = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    waiting_match = models.JSONField(default=dict, blank=True)
    # The event that woke it, handed to the node when it resumes.
    woken_by = models.JSONField(null=True, blank=True)
    # The trigger event's properties, for templates and keyed waits.
    context = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)
    goal_reached_at = models.DateTimeField(null=True, blank=True)
    enrolled_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["journey", "customer", "entry_key"], name="enrollment_entry_once")
        ]
        indexes = [
            # The tick's claim: due enrollments, oldest first.
            models.Index(fields=["wake_at"], name="enrollment_due", condition=models.Q(status="active")),
            # An arriving event's customers: which of their enrollments wait for an event.
            models.Index(
                fields=["customer"],
                name="enrollment_waiting_event",
                condition=models.Q(status="active") & ~models.Q(waiting_events=[]),
            ),
            models.Index(fields=["journey", "node_id", "status"], name="enrollment_at_node"),
            models.Index(fields=["journey", "customer", "-enrolled_at"], name="enrollment_customer"),
        ]

    def __str__(self) -> str:
        return f"enrollment {self.pk} at {self.node_id}"


class Step(models.Model):
    """One visit of an enrollment to a node, with the handle it left by (empty while it is there)."""

    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="steps")
    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="+")
    node_id = models.CharField(max_length=100)
    node_type = models.CharField(max_length=60)
    visit = models.PositiveIntegerField()
    outcome = models.CharField(max_length=100, blank=True)
    reason = models.TextField(blank=True)
    entered_at = models.DateTimeField()
    left_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["enrollment", "node_id", "visit"], name="step_once"),
        ]
        indexes = [models.Index(fields=["journey", "node_id", "outcome"], name="step_node_outcome")]

    def __str__(self) -> str:
        return f"{self.enrollment_id} {self.node_id}#{self.visit} → {self.outcome or '…'}"


class SweepCursor(models.Model):
    """How far a sweep over events has got (one row per sweep): by time, or by event id."""

    name = models.CharField(max_length=40, primary_key=True)
    swept_until = models.DateTimeField()
    swept_through_id = models.BigIntegerField(default=0, db_default=0)

    def __str__(self) -> str:
        return f"{self.name} until {self.swept_until}"


class StaffTask(models.Model):
    """Work for a person, usually the customer's owner ("call back about the live stream"), created by
    a journey's task step, which then waits for its outcome. Closing it is an event on the customer's
    timeline (``task_closed``)."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        DONE = "done", _("Done")
        NOT_REACHED = "not_reached", _("Not reached")

    CLOSED_EVENT = "task_closed"

    customer = models.ForeignKey("cdp.Customer", on_delete=models.CASCADE, related_name="staff_tasks")
    # Null: nobody owns the customer; anyone who works on tasks may take it.
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="staff_tasks"
    )
    title = models.CharField(max_length=200)
    note = models.TextField(blank=True)
    due_at = models.DateTimeField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    outcome_note = models.TextField(blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    journey = models.ForeignKey(Journey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    node_id = models.CharField(max_length=100, blank=True)
    # The journey step that created it (its idempotency key): a replayed step finds its task.
    key = models.CharField(max_length=200, unique=True, null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(
                fields=["assignee", "due_at"], name="staff_task_open_due", condition=models.Q(status="open")
            ),
            models.Index(fields=["customer", "-created_at"], name="staff_task_customer"),
        ]

    def __str__(self) -> str:
        return self.title


# Test mode's enrollments (rolled back when the test run ends) have entry keys with this prefix; the
# nodes that reach outside the database (a webhook) read the outcome the tester chose instead.
TEST_ENTRY_PREFIX = "test:"
TEST_OUTCOMES_KEY = "_test_outcomes"


def tested_outcome(enrollment: Enrollment, node_id: str) -> str | None:
    """In test mode, the handle a node that reaches outside should leave by ('' : its default)."""
    if not enrollment.entry_key.startswith(TEST_ENTRY_PREFIX):
        return None
    return str((enrollment.context or {}).get(TEST_OUTCOMES_KEY, {}).get(node_id, ""))


class ScheduledRun(models.Model):
    """One occurrence of a scheduled audience trigger: its segment's members enter, in chunks, each
    chunk committed with how far it got, so a run that a killed worker left half done goes on at the
    next tick. Unique per occurrence: two beats never start the same one twice."""

    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="scheduled_runs")
    version = models.ForeignKey(JourneyVersion, on_delete=models.CASCADE, related_name="+")
    node_id = models.CharField(max_length=100)
    occurrence = models.DateTimeField()
    segment_key = models.CharField(max_length=100)
    # Members enter in customer id order; the next chunk starts after this id.
    after_customer_id = models.BigIntegerField(default=0)
    enrolled = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["journey", "node_id", "occurrence"], name="scheduled_run_once")
        ]
        indexes = [
            models.Index(
                fields=["started_at"], name="scheduled_run_open", condition=models.Q(finished_at=None)
            )
        ]

    def __str__(self) -> str:
        return f"{self.journey_id}:{self.node_id} at {self.occurrence}"


class MatchedThrough(models.Model):
    """The newest event of a customer that trigger matching has looked at: the sweep for lost matching
    tasks starts journeys only from events after it (an event seen once is never matched again)."""

    customer_id = models.BigIntegerField(primary_key=True)
    event_id = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.customer_id} through {self.event_id}"


class MatchRequest(models.Model):
    """A customer with new events to match with journeys. The first matching task that runs takes
    every pending request, so a burst of single-event commits costs a few matchings, not one each; a
    request whose task is lost is found by the sweep from its events."""

    customer_id = models.BigIntegerField(primary_key=True)
    requested_at = models.DateTimeField()

    def __str__(self) -> str:
        return str(self.customer_id)


class ChannelPolicy(models.Model):
    """The contact policy of one channel kind for journey sends: how many messages a customer may get
    per day and per week, and the quiet hours (in the customer's time zone) when they get none."""

    class QuietAction(models.TextChoices):
        HOLD = "hold", _("Hold the message until the quiet hours end")
        SKIP = "skip", _("Skip the message")

    channel = models.CharField(_("channel"), max_length=30, unique=True)
    per_day = models.PositiveIntegerField(_("at most per day"), null=True, blank=True)
    per_week = models.PositiveIntegerField(_("at most per week"), null=True, blank=True)
    quiet_start = models.TimeField(_("quiet hours from"), null=True, blank=True)
    quiet_end = models.TimeField(_("quiet hours until"), null=True, blank=True)
    quiet_action = models.CharField(
        _("in quiet hours"), max_length=4, choices=QuietAction.choices, default=QuietAction.HOLD
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["channel"]

    def __str__(self) -> str:
        return self.channel
