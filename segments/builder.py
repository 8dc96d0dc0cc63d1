"""What the rule builder shows, as data: the kinds of condition (one table entry each: its
label, a blank condition, and the editor that edits it), the operators with their labels, and the
builder's words, all translated here, so the builder's script holds no text of its own. The same
table turns a saved rule into sentences for the segment's page.

A new kind of leaf that compares one value (``{"stage": "key"}``, ``{"score": {"op": ..., "value":
...}}``) needs one ``LeafKind`` entry with its fields; traits and events have editors of their own
in ``segments/static/segments/rule_builder.js``. The builder is mounted by the segment pages (with
their live count, ``builder_page_config``) and by the journey canvas for a condition's rules
(``builder_config``, passed in ``journeys/canvas.py``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from django.urls import reverse
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from segments.rules import Comparison, MomentTest, PropertyFilter

COMPARISON_LABELS = {
    "eq": gettext_lazy("equals"),
    "ne": gettext_lazy("does not equal"),
    "gt": gettext_lazy("is greater than"),
    "gte": gettext_lazy("is at least"),
    "lt": gettext_lazy("is less than"),
    "lte": gettext_lazy("is at most"),
    "between": gettext_lazy("is between"),
    "contains": gettext_lazy("contains"),
    "in": gettext_lazy("is one of"),
    "exists": gettext_lazy("is set"),
    "not_exists": gettext_lazy("is not set"),
    "within_last_days": gettext_lazy("is a date in the last … days"),
    "before": gettext_lazy("is a date before"),
    "after": gettext_lazy("is a date after"),
}
COUNT_LABELS = {
    "gte": gettext_lazy("at least"),
    "lte": gettext_lazy("at most"),
    "eq": gettext_lazy("exactly"),
}
MOMENT_LABELS = {
    "within_last_days": gettext_lazy("in the last … days"),
    "before": gettext_lazy("before"),
    "after": gettext_lazy("after"),
}
SCORE_LABELS = {
    "gte": gettext_lazy("at least"),
    "gt": gettext_lazy("more than"),
    "lte": gettext_lazy("at most"),
    "lt": gettext_lazy("less than"),
    "eq": gettext_lazy("exactly"),
    "between": gettext_lazy("between"),
}
CONSENT_LABELS = {
    "subscribed": gettext_lazy("agreed to be contacted"),
    "unsubscribed": gettext_lazy("opted out"),
}


def _ops(labels: dict, allowed) -> list[list[str]]:
    return [[op, str(labels[op])] for op in allowed]


COMPARISON_OPS = Comparison.model_fields["op"].annotation.__args__
PROPERTY_OPS = tuple(op for op in COMPARISON_OPS if op not in PropertyFilter.refused_ops)
MOMENT_OPS = MomentTest.model_fields["op"].annotation.__args__


@dataclass(frozen=True)
class Field:
    """One input of a leaf editor: where its value lives in the leaf, and how it is picked."""

    path: tuple[str, ...]
    widget: str  # select, text or number
    prefix: Promise | None = None
    options: str | dict | None = None  # a vocabulary list ("tags") or fixed {value: label}
    suggest: str | None = None  # a vocabulary list offered as suggestions for a text input
    suffix: Promise | None = None
    # A number that becomes two (lowest first) while the field at this path says "between".
    range_with: tuple[str, ...] | None = None

    def spec(self) -> dict:
        options = self.options
        if isinstance(options, dict):
            options = [[value, str(label)] for value, label in options.items()]
        return {
            "path": list(self.path),
            "widget": self.widget,
            "prefix": str(self.prefix) if self.prefix else "",
            "suffix": str(self.suffix) if self.suffix else "",
            "options": options,
            "suggest": self.suggest,
            "range_with": list(self.range_with) if self.range_with else None,
        }


@dataclass(frozen=True)
class LeafKind:
    key: str  # the leaf's own key in the JSON: {"tag": ...}
    label: Promise
    blank: dict
    describe: Callable[[dict, dict], str]
    editor: str = "fields"  # fields (generic), comparison (traits) or event
    fields: tuple[Field, ...] = field(default_factory=tuple)

    def spec(self) -> dict:
        return {
            "key": self.key,
            "label": str(self.label),
            "blank": self.blank,
            "editor": self.editor,
            "fields": [item.spec() for item in self.fields],
        }


# --------------------------------------------------------------------------------------------------
# Sentences for a saved rule


def _value(value) -> str:
    if isinstance(value, dict) and "days_ago" in value:
        return _("%(days)s days ago") % {"days": value["days_ago"]}
    if isinstance(value, bool):
        return _("true") if value else _("false")
    if isinstance(value, str):
        return f"“{value}”"
    return str(value)


def comparison_text(op: str, value) -> str:
    label = str(COMPARISON_LABELS.get(op, op))
    if op in ("exists", "not_exists"):
        return label
    if op == "between" and isinstance(value, list) and len(value) == 2:
        return _("%(op)s %(low)s and %(high)s") % {
            "op": label,
            "low": _value(value[0]),
            "high": _value(value[1]),
        }
    if op == "in" and isinstance(value, list):
        return f"{label} {', '.join(_value(item) for item in value)}"
    if op == "within_last_days":
        return _("is a date in the last %(days)s days") % {"days": value}
    return f"{label} {_value(value)}"


def _trait_text(leaf: dict, names: dict) -> str:
    return _("trait %(trait)s %(test)s") % {
        "trait": leaf.get("trait", ""),
        "test": comparison_text(leaf.get("op", ""), leaf.get("value")),
    }


def _moment_text(which: str, test: dict) -> str:
    op, value = test.get("op"), test.get("value")
    if op == "within_last_days":
        when = _("in the last %(days)s days") % {"days": value}
    else:
        when = f"{MOMENT_LABELS.get(op, op)} {_value(value)}"
    if which == "first_time":
        return _("for the first time %(when)s") % {"when": when}
    return _("for the last time %(when)s") % {"when": when}


def _event_text(leaf: dict, names: dict) -> str:
    event = leaf.get("event", "")
    parts = [(_("did %(event)s") if leaf.get("did", True) else _("did not do %(event)s")) % {"event": event}]
    count = leaf.get("count")
    if count:
        parts.append(
            _("%(op)s %(count)s times")
            % {"op": COUNT_LABELS.get(count.get("op", "gte")), "count": count.get("value", 1)}
        )
    if leaf.get("within_days"):
        parts.append(_("in the last %(days)s days") % {"days": leaf["within_days"]})
    if leaf.get("between"):
        low, high = leaf["between"]
        parts.append(_("between %(low)s and %(high)s") % {"low": low, "high": high})
    for which in ("first_time", "last_time"):
        if leaf.get(which):
            parts.append(_moment_text(which, leaf[which]))
    filters = [
        f"{condition.get('property', '')} {comparison_text(condition.get('op', ''), condition.get('value'))}"
        for condition in leaf.get("where") or []
    ]
    if filters:
        parts.append(_("where %(filters)s") % {"filters": "; ".join(filters)})
    return " ".join(parts)


def _named(kind: str, text: str) -> Callable[[dict, dict], str]:
    def describe(leaf: dict, names: dict) -> str:
        key = leaf.get(kind, "")
        name = names.get(kind, {}).get(key)
        return text % {"name": f"{name} ({key})" if name and name != key else key}

    return describe


def _consent_text(leaf: dict, names: dict) -> str:
    status = leaf.get("status", "subscribed")
    return _("%(status)s on %(channel)s") % {
        "status": CONSENT_LABELS.get(status, status),
        "channel": leaf.get("consent", ""),
    }


def _score_text(leaf: dict, names: dict) -> str:
    test = leaf.get("score") or {}
    op, value = test.get("op", "gte"), test.get("value")
    if op == "between" and isinstance(value, list) and len(value) == 2:
        return _("score between %(low)s and %(high)s") % {"low": value[0], "high": value[1]}
    return _("score %(op)s %(value)s") % {"op": SCORE_LABELS.get(op, op), "value": value}


# --------------------------------------------------------------------------------------------------
# The table

LEAF_KINDS: tuple[LeafKind, ...] = (
    LeafKind(
        "event",
        gettext_lazy("Event"),
        {"event": ""},
        _event_text,
        editor="event",
    ),
    LeafKind(
        "trait",
        gettext_lazy("Trait"),
        {"trait": "", "op": "eq", "value": ""},
        _trait_text,
        editor="comparison",
    ),
    LeafKind(
        "tag",
        gettext_lazy("Has tag"),
        {"tag": ""},
        _named("tag", gettext_lazy("has the tag %(name)s")),
        fields=(Field(("tag",), "select", gettext_lazy("has the tag"), options="tags"),),
    ),
    LeafKind(
        "segment",
        gettext_lazy("In segment"),
        {"segment": ""},
        _named("segment", gettext_lazy("is in the segment %(name)s")),
        fields=(Field(("segment",), "select", gettext_lazy("is in the segment"), options="segments"),),
    ),
    LeafKind(
        "role",
        gettext_lazy("Role"),
        {"role": ""},
        _named("role", gettext_lazy("holds the role %(name)s")),
        fields=(Field(("role",), "select", gettext_lazy("holds the role"), options="roles"),),
    ),
    LeafKind(
        "consent",
        gettext_lazy("Consent"),
        {"consent": "sms", "status": "subscribed"},
        _consent_text,
        fields=(
            Field(("status",), "select", gettext_lazy("has"), options=CONSENT_LABELS),
            Field(("consent",), "text", gettext_lazy("on the channel"), suggest="consent_channels"),
        ),
    ),
    LeafKind(
        "stage",
        gettext_lazy("Lifecycle stage"),
        {"stage": ""},
        _named("stage", gettext_lazy("is in the lifecycle stage %(name)s")),
        fields=(Field(("stage",), "select", gettext_lazy("is in the lifecycle stage"), options="stages"),),
    ),
    LeafKind(
        "score",
        gettext_lazy("Score"),
        {"score": {"op": "gte", "value": 50}},
        _score_text,
        fields=(
            Field(("score", "op"), "select", gettext_lazy("has a score of"), options=SCORE_LABELS),
            Field(("score", "value"), "number", suffix=gettext_lazy("points"), range_with=("score", "op")),
        ),
    ),
)
LEAF_KIND_BY_KEY = {kind.key: kind for kind in LEAF_KINDS}


def builder_labels() -> dict[str, str]:
    """The builder's words, in the user's language."""
    return {
        "all": _("all"),
        "any": _("any"),
        "match_prefix": _("Match"),
        "match_suffix": _("of these conditions"),
        "add_condition": _("Add a condition…"),
        "add_group": _("+ Group"),
        "remove": _("Remove"),
        "not": _("not"),
        "not_title": _("Turn this condition into its opposite"),
        "did": _("did"),
        "did_not": _("did not do"),
        "event_placeholder": _("event name"),
        "trait_placeholder": _("trait"),
        "property_placeholder": _("property"),
        "value_placeholder": _("value"),
        "values_placeholder": _("values, separated by commas"),
        "add_filter": _("+ Property filter"),
        "where": _("where"),
        "times": _("times"),
        "any_number": _("at least once"),
        "how_often": _("how often"),
        "when": _("when"),
        "any_time": _("at any time"),
        "within_days": _("in the last … days"),
        "between_dates": _("between two dates"),
        "first_time": _("for the first time"),
        "last_time": _("for the last time"),
        "days": _("days"),
        "and": _("and"),
        "range_low": _("lowest"),
        "range_high": _("highest"),
        "a_date": _("on a date"),
        "days_ago": _("days ago"),
        "as_text": _("text"),
        "as_number": _("number"),
        "as_boolean": _("true/false"),
        "true": _("true"),
        "false": _("false"),
        "choose": _("Choose…"),
        "empty_group": _("No conditions yet: add one below."),
        "counting": _("Counting…"),
        "matching": _("customers match"),
        "no_conditions": _("Add a condition to see how many customers match."),
        "nobody": _("Nobody matches these conditions right now."),
        "sample": _("Some of them"),
        "unnamed": _("Unnamed visitor"),
        "failed": _("The count failed; it will be tried again on the next change."),
        "fix_first": _("Fix the marked conditions to see the count."),
    }


def builder_config() -> dict:
    """Everything the builder's script needs wherever it is mounted: the kinds of condition, their
    operators, its words, and where it loads the vocabulary from."""
    return {
        "kinds": [kind.spec() for kind in LEAF_KINDS],
        "ops": {
            "comparison": _ops(COMPARISON_LABELS, COMPARISON_OPS),
            "property": _ops(COMPARISON_LABELS, PROPERTY_OPS),
            "count": _ops(COUNT_LABELS, ("gte", "lte", "eq")),
            "moment": _ops(MOMENT_LABELS, MOMENT_OPS),
        },
        "labels": builder_labels(),
        "vocabularyUrl": reverse("api_segment_vocabulary"),
    }


def builder_page_config(problems: list[dict] | None = None) -> dict:
    """The builder's configuration for a page that holds it (segments, stages, dynamic tags), with
    the problems of the rule last posted, each shown at its condition."""
    return {
        **builder_config(),
        "problems": problems or [],
        "previewUrl": reverse("api_segment_preview"),
        "customerUrl": reverse("customer", args=[0]),
    }


def rule_form_context(request, *, stored_rule, problems: list[dict], **labels) -> dict:
    """What ``segments/rule_form.html`` needs besides its form: the headings and links (``labels``),
    the rule as just posted (kept as typed) or as stored, and the builder's configuration."""
    if request.method == "POST":
        rule_json = request.POST.get("rule", "")
    else:
        rule_json = json.dumps(stored_rule or {"and": []}, ensure_ascii=False)
    return {**labels, "rule_json": rule_json, "config": builder_page_config(problems)}


# --------------------------------------------------------------------------------------------------
# A saved rule, readable


def rule_outline(rule, names: dict) -> dict:
    """The rule as nested sentences: {"text", "negated", "children"}; ``names`` maps a kind to
    {key: name} for tags, segments, roles and stages."""
    negated = False
    while isinstance(rule, dict) and set(rule) == {"not"}:
        negated, rule = not negated, rule["not"]
    if isinstance(rule, dict) and ("and" in rule or "or" in rule):
        children = rule.get("and") or rule.get("or") or []
        return {
            "text": _("all of these") if "and" in rule else _("any of these"),
            "negated": negated,
            "children": [rule_outline(child, names) for child in children],
        }
    kind = next((LEAF_KIND_BY_KEY[key] for key in rule if key in LEAF_KIND_BY_KEY), None) if rule else None
    text = kind.describe(rule, names) if kind else str(rule)
    return {"text": text, "negated": negated, "children": []}
