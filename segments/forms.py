"""Forms of the lifecycle and scoring pages. Rules are JSON trees (docs/rules.md); the services
check them against the data and say what is wrong where."""

import json

from django import forms
from django.utils.translation import gettext_lazy as _

from segments.models import ScoringRule, TagGroup


class RuleField(forms.CharField):
    """A rule as JSON text, parsed to the tree the services check."""

    widget = forms.Textarea(attrs={"rows": 5, "class": "code", "spellcheck": "false"})

    def to_python(self, value):
        text = super().to_python(value)
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(
                _("This is not valid JSON (line %(line)s, column %(column)s): %(problem)s"),
                params={"line": error.lineno, "column": error.colno, "problem": error.msg},
            ) from error

    def prepare_value(self, value):
        return (
            value
            if isinstance(value, str) or value is None
            else json.dumps(value, ensure_ascii=False, indent=2)
        )


class StageForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    key = forms.CharField(label=_("Key (used in rules)"), max_length=100, required=False)
    color = forms.CharField(label=_("Colour"), max_length=7, widget=forms.TextInput(attrs={"type": "color"}))
    rule = RuleField(label=_("Who is in this stage"), widget=forms.HiddenInput)


class ScoringRuleForm(forms.Form):
    # Name and event are checked by the service, with everything else, so all problems show at once.
    name = forms.CharField(label=_("Name"), max_length=200, required=False)
    event = forms.CharField(
        label=_("Event"),
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"list": "event-names"}),
    )
    where = RuleField(
        label=_("Only events whose properties match (optional)"),
        required=False,
        help_text=_('A list of property filters, e.g. [{"property": "revenue", "op": "gte", "value": 500}].'),
    )
    points = forms.IntegerField(label=_("Points per event"), help_text=_("Negative points lower the score."))
    cap = forms.IntegerField(label=_("At most (points)"), required=False, min_value=1)
    cap_period = forms.ChoiceField(label=_("per"), choices=ScoringRule.Period.choices, initial="day")
    expires_after_days = forms.IntegerField(
        label=_("Points lapse after (days)"),
        required=False,
        min_value=1,
        help_text=_("Empty: they never lapse."),
    )

    def clean_where(self):
        return self.cleaned_data.get("where") or []


class DynamicTagForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100, required=False)
    key = forms.CharField(label=_("Key (used in rules)"), max_length=100, required=False)
    group = forms.ModelChoiceField(label=_("Group"), queryset=TagGroup.objects.all(), required=False)
    color = forms.CharField(
        label=_("Colour"), max_length=7, required=False, widget=forms.TextInput(attrs={"type": "color"})
    )
    rule = RuleField(label=_("Who holds it"), widget=forms.HiddenInput)
