"""What the canvas editor island is told by its page: the API addresses it talks to, every string it
shows, translated here so the island carries no language of its own, and the configuration of the
rule builder (segments/builder.py) it mounts for a condition's rules."""

from __future__ import annotations

from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from connectors.models import Message
from connectors.protocol import Channel
from journeys.models import Journey, StaffTask
from segments.builder import builder_config

# Keyed as the island looks them up; "{name}" placeholders are filled in by the island.
CANVAS_STRINGS = {
    "palette": _("Steps"),
    "paletteSearch": _("Search steps"),
    "paletteHint": _("Drag a step onto the canvas, or press Enter to add it after the selected step."),
    "noMatch": _("No step matches."),
    "emptyCanvas": _("Drag a trigger here to start the journey."),
    "kind.trigger": _("Trigger"),
    "kind.flow": _("Flow"),
    "kind.action": _("Action"),
    "handle.default": _("next"),
    "handle.delivered": _("delivered"),
    "handle.failed": _("failed"),
    "handle.no_response": _("no response"),
    "handle.happened": _("happened"),
    "handle.timed_out": _("timed out"),
    "handle.else": _("else"),
    "undo": _("Undo"),
    "redo": _("Redo"),
    "layout": _("Tidy up"),
    "fitView": _("Fit to view"),
    "help": _("Keyboard shortcuts"),
    "close": _("Close"),
    "delete": _("Delete"),
    "duplicate": _("Duplicate"),
    "validate": _("Validate"),
    "publish": _("Publish"),
    "publishTitle": _("Publish this draft?"),
    "publishExplain": _(
        "Customers who enter from now on follow the new version; customers already in the journey "
        "stay on theirs."
    ),
    "versionNote": _("What changed (version note)"),
    "cancel": _("Cancel"),
    "published": _("Published version {number}."),
    "pause": _("Pause"),
    "resume": _("Resume"),
    "status.draft": _("Draft"),
    "status.active": _("Active"),
    "status.paused": _("Paused"),
    "status.archived": _("Archived"),
    "saving": _("Saving…"),
    "saved": _("All changes saved"),
    "unsaved": _("Unsaved changes"),
    "saveFailed": _("Could not save: {reason}"),
    "conflict": _(
        "Someone else saved this journey since you opened it. Your changes are still here and have "
        "not been saved."
    ),
    "conflictTheirs": _("Load their version"),
    "conflictMine": _("Keep mine and save over theirs"),
    "conflictUndoHint": _("After loading theirs, Undo brings your changes back."),
    "noProblems": _("No problems: the journey can be published."),
    "problemOne": _("1 problem to fix before publishing."),
    "problemsCount": _("{count} problems to fix before publishing."),
    "graphProblem": _("Journey"),
    "branchNumber": _("branch {number}"),
    "config": _("Settings"),
    "selectHint": _("Select a step to change its settings."),
    "nodeId": _("Step id"),
    "connections": _("Connections"),
    "connectTo": _("Leads to"),
    "nowhere": _("— not connected —"),
    "required": _("Required."),
    "tooShort": _("Too short."),
    "tooLong": _("At most {count} characters."),
    "notNumber": _("Give a whole number."),
    "min": _("At least {value}."),
    "max": _("At most {value}."),
    "pattern": _("Not in the expected form."),
    "badJson": _("Not valid JSON: {reason}"),
    "editAsJson": _("Edit as JSON"),
    "editWithBuilder": _("Back to the rule builder"),
    "notObject": _("A rule is a JSON object."),
    "tooFew": _("At least {count}."),
    "tooMany": _("At most {count}."),
    "add": _("Add"),
    "remove": _("Remove"),
    "choose": _("Choose…"),
    "minutes": _("minutes"),
    "hours": _("hours"),
    "days": _("days"),
    "secondsCount": _("{count} s"),
    "minutesCount": _("{count} min"),
    "hoursCount": _("{count} h"),
    "daysCount": _("{count} d"),
    "templatePreview": _("Preview"),
    "templateOtherChannel": _("This template is for another channel than the account."),
    "dynamicTag": _("rule-based"),
    "history": _("Versions"),
    "noVersions": _("Not published yet."),
    "draft": _("Draft"),
    "viewingVersion": _("Version {number}, read-only."),
    "backToDraft": _("Back to the draft"),
    "live": _("Live"),
    "liveTitle": _("Live: version {number}, counts update as customers move."),
    "entered": _("entered"),
    "waitingLink": _("{count} waiting: see who"),
    "readOnly": _("Read-only: you may view this journey but not change it."),
    "archivedReadOnly": _("Archived journeys cannot be changed."),
    "name": pgettext_lazy("journey", "Name"),
    "loadFailed": _("The editor could not load: {reason}"),
    "shortcut.add": _("Add the focused palette step after the selected step"),
    "shortcut.connect": _("Connect a step: choose what each handle leads to in its settings"),
    "shortcut.delete": _("Delete the selection"),
    "shortcut.multi": _("Select several (hold while clicking or dragging a box)"),
    "shortcut.copy": _("Copy, paste"),
    "shortcut.duplicate": _("Duplicate the selection"),
    "shortcut.undo": _("Undo"),
    "shortcut.redo": _("Redo"),
    "shortcut.all": _("Select everything"),
    "shortcut.help": _("Show these shortcuts"),
    "shortcut.move": _("Move the selected steps"),
    # Test run: the draft run for one customer, its path drawn on the canvas.
    "testRun": _("Test run"),
    "testExplain": _(
        "Runs the saved draft for one customer on a simulated clock: delays and waits pass at once, "
        "messages go to the channel's sandbox, and nothing the run does is kept."
    ),
    "testCustomer": _("Customer"),
    "testCustomerPlaceholder": _("Name, phone, email or #id"),
    "testRecent": _("Recently seen"),
    "testMatches": _("Matching customers"),
    "testSearching": _("Searching…"),
    "testNoCustomer": _(
        "No customer matches: try a whole phone number or email, the start of a name, or #id."
    ),
    "testUnnamed": _("Unnamed visitor"),
    "testChangeCustomer": _("Change"),
    "testChooseCustomer": _("Choose the customer to run the journey for."),
    "testOnTheWay": _("On the way, the customer does (optional)"),
    "testEvent": _("Event"),
    "testAfterMinutes": _("Minutes after entering"),
    "testTrigger": _("Start at"),
    "testStart": _("Run the test"),
    "testRunning": _("Running…"),
    "testNotSaved": _("The draft could not be saved, so the test did not run."),
    "testFailed": _("The test could not run: {reason}"),
    "testSteps": _("The path taken"),
    "testPrevious": _("Previous step"),
    "testNext": _("Next step"),
    "testStepOf": _("Step {number} of {count}"),
    "testOrder": _("Test run step {orders}"),
    "testLeftBy": _("Left by"),
    "testWaitingHere": _("still here, waiting"),
    "testEndedHere": _("the journey ended here"),
    "testWhy": _("Why"),
    "testClock": _("Simulated clock"),
    "testMessages": _("Messages (sandbox)"),
    "testTasks": _("Tasks"),
    "testMessageCount": _("Messages sent to the sandbox: {count}"),
    "testProblems": _("Problems publishing would still refuse: {count}, listed above and on their steps."),
    "testEndAt": _("At “{step}”, {elapsed} after entering."),
    "testEnd.waiting": _("Waiting for {events}"),
    "testEnd.active": _("Still in the journey"),
    "testEnd.completed": _("Completed"),
    "testEnd.completed-goal": _("Completed: reached the goal"),
    "testEnd.completed-exit": _("Completed at an exit"),
    "testEnd.completed-by-handle": _("Completed: “{handle}” ends the journey"),
    "testEnd.exited": _("Exited: {reason}"),
    "testEnd.failed": _("Failed: {reason}"),
    "testHere.waiting": _("Waiting here"),
    "testHere.active": _("Still here"),
    "testHere.completed": _("Ended here"),
    "testHere.exited": _("Exited here"),
    "testHere.failed": _("Failed here"),
    "testWhy.entered": _("The customer entered the journey here."),
    "testWhy.branch": _("The rule of “{branch}” holds for this customer."),
    "testWhy.else": _("No branch's rule holds for this customer, so they go on by “{branch}”."),
    "testWhy.bucket": _("Random bucket {bucket} of 100 falls in “{branch}”; this customer always gets it."),
    "testWhy.happened": _("The awaited event arrived."),
    "testWhy.timedOut": _("The awaited event did not arrive in time."),
    "testWhy.goal": _("The goal is reached: the customer counts as converted."),
    "testWhy.goalEnds": _("The goal is reached, and it ends the journey."),
    "testWhy.exit": _("The exit ends the journey."),
    "testClear": _("Clear the test run"),
    "testClose": _("Close the test run"),
    "testPage": _("Test run page"),
    # The journey's settings, beside its drawing.
    "settings": _("Journey settings"),
    "description": _("Description"),
    "descriptionHelp": _("What the journey is for, in a sentence your colleagues will understand."),
    "entryPolicy": _("Who may enter, and how often"),
    "entryPolicyHelp.once": _("A customer goes through the journey once, ever."),
    "entryPolicyHelp.after_cooldown": _(
        "A customer may enter again once out of the journey and the cooldown has passed since they "
        "last entered."
    ),
    "entryPolicyHelp.once_per_key": _(
        "A customer enters once for each value of a property of the trigger event: once per order, "
        "once per cart."
    ),
    "cooldown": _("Cooldown"),
    "cooldownRequired": _("Give how long a customer waits before entering again."),
    "entryKeyProperty": _("The trigger event's property that holds the key"),
    "save": _("Save"),
    "settingsSaved": _("Journey settings saved."),
    "settingsNotSaved": _("The drawing's changes could not be saved first, so the settings were not saved."),
}

# Config field names as the panel labels them; a field not listed shows its schema title.
FIELD_LABELS = {
    "label": _("Name on the canvas"),
    "ends": _("Handles that end the journey"),
    "event": _("Event"),
    "where": _("Property filters"),
    "property": _("Property"),
    "op": _("Operator"),
    "value": _("Value"),
    "segment": _("Segment"),
    "on": _("When the customer"),
    "tag": _("Tag"),
    "seconds": _("Wait for"),
    "until_time": _("Or until the time of day"),
    "time_zone": _("Time zone"),
    "timeout_seconds": _("Give up after"),
    "match_property": _("Same value of the trigger's property"),
    "branches": _("Branches"),
    "id": _("Handle"),
    "rule": _("Rule"),
    "percent": _("Percent"),
    "exit": _("End the journey at the goal"),
    "account": _("Channel account"),
    "template": _("Message template"),
    "no_response_seconds": _("No response after"),
    "trait": _("Trait"),
    "points": _("Points"),
    "expires_after_days": _("Points lapse after (days)"),
}

ENUM_LABELS = {
    "entered": _("enters the segment"),
    "exited": _("leaves the segment"),
    "customer": _("the customer's"),
    "site": _("the site's"),
}


def _translated(strings: dict) -> dict[str, str]:
    return {key: str(value) for key, value in strings.items()}


def _choices(choices) -> list[dict[str, str]]:
    return [{"value": value, "label": str(label)} for value, label in choices]


def canvas_setup(*, journey, can_manage: bool) -> dict:
    """Everything the editor island reads from its page (rendered with json_script)."""
    return {
        "journeyId": journey.pk,
        "canEdit": can_manage and journey.status != journey.Status.ARCHIVED,
        "readOnlyReason": "archivedReadOnly" if journey.status == journey.Status.ARCHIVED else "readOnly",
        "urls": {
            "journey": reverse("api_journey", args=[journey.pk]),
            "nodeTypes": reverse("api_journey_node_types"),
            "validate": reverse("api_journey_validate"),
            "publish": reverse("api_journey_publish", args=[journey.pk]),
            "pause": reverse("api_journey_pause", args=[journey.pk]),
            "resume": reverse("api_journey_resume", args=[journey.pk]),
            "versions": reverse("api_journey_versions", args=[journey.pk]),
            "stats": reverse("api_journey_stats", args=[journey.pk]),
            "socket": f"/ws/journeys/{journey.pk}/live/",
            "nodeCustomers": reverse("journey_node", args=[journey.pk, "NODE"]),
            "tags": reverse("api_tags"),
            "segments": reverse("api_segments"),
            "vocabulary": reverse("api_segment_vocabulary"),
            "templates": reverse("api_message_templates"),
            "accounts": reverse("api_channel_account_options"),
            "test": reverse("api_journey_test", args=[journey.pk]),
            "testPage": reverse("journey_test", args=[journey.pk]),
            # Searched with ?q=; one customer is this address followed by "<id>/".
            "customers": reverse("api_customers"),
        },
        "strings": _translated(CANVAS_STRINGS),
        "fieldLabels": _translated(FIELD_LABELS),
        "enumLabels": _translated(ENUM_LABELS),
        "entryPolicies": _choices(Journey.EntryPolicy.choices),
        "messageStatuses": _translated(dict(Message.Status.choices)),
        "taskStatuses": _translated(dict(StaffTask.Status.choices)),
        "channelLabels": _translated(Channel.LABELS),
        # The segment pages' rule builder, which the panel mounts for a condition's rules.
        "ruleBuilder": builder_config(),
    }
