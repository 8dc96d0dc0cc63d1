"""Forms built from a connector kind's settings schema (pydantic), and the test-send form."""

from __future__ import annotations

import types
import typing

from django import forms
from django.utils.translation import gettext_lazy as _
from pydantic import HttpUrl

from connectors.protocol import ConnectorKind


def _base_type(annotation):
    if typing.get_origin(annotation) in {typing.Union, types.UnionType}:
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return options[0] if options else str
    return annotation


def settings_form_class(
    kind: type[ConnectorKind], *, has_secrets: bool = False, generates_secrets: bool = False
) -> type[forms.Form]:
    """A form with the account's name and rate, then one field per setting, secrets as password
    inputs (never filled in again; left empty on an existing account they keep their value)."""
    secret_names = set(kind.secret_fields())
    fields: dict[str, forms.Field] = {
        "name": forms.CharField(label=_("Name"), max_length=200),
        "rate_per_second": forms.FloatField(
            label=_("Sends per second"),
            initial=100,
            help_text=_("One limit for all workers together."),
        ),
    }
    for name, info in kind.settings_model.model_fields.items():
        annotation = _base_type(info.annotation)
        label = name.replace("_", " ").capitalize()
        help_text = info.description or ""
        required = info.is_required()
        initial = None if info.is_required() else info.default
        if name in secret_names:
            if has_secrets:
                help_text = _("Stored encrypted; leave empty to keep the stored value.")
            elif generates_secrets:
                help_text = _("Stored encrypted; leave empty to have one generated.")
            field = forms.CharField(
                label=label,
                required=not (has_secrets or generates_secrets),
                widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
                help_text=help_text,
            )
        elif annotation is bool:
            field = forms.BooleanField(label=label, required=False, initial=initial, help_text=help_text)
        elif annotation is int:
            field = forms.IntegerField(label=label, required=required, initial=initial, help_text=help_text)
        elif annotation is float:
            field = forms.FloatField(label=label, required=required, initial=initial, help_text=help_text)
        elif annotation is HttpUrl:
            field = forms.URLField(label=label, required=required, initial=initial, help_text=help_text)
        else:
            field = forms.CharField(label=label, required=required, initial=initial, help_text=help_text)
        fields[name] = field
    return type(f"{kind.__name__}Form", (forms.Form,), dict(fields))


def schema_problems_add(form: forms.Form, kind: type[ConnectorKind]) -> None:
    """Adds the schema's problems to fields the form itself found nothing wrong with, so that one
    submission shows every problem."""
    values = settings_values(kind, getattr(form, "cleaned_data", {}))
    _model, problems = kind.settings_validate(values)
    for name, problem in problems.items():
        if name in form.fields and name in values and not form.has_error(name):
            form.add_error(name, problem)


def settings_values(kind: type[ConnectorKind], cleaned: dict) -> dict:
    names = kind.settings_model.model_fields
    return {
        name: (str(value) if value is not None and not isinstance(value, bool | int | float) else value)
        for name, value in cleaned.items()
        if name in names and value not in (None, "")
    }


class TestSendForm(forms.Form):
    customer = forms.CharField(
        label=_("Customer"),
        max_length=200,
        help_text=_("A customer id, phone number, email or user id."),
    )
    text = forms.CharField(label=_("Text"), widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)
