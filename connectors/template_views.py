"""Message template pages: the list, the editor (fields per channel kind) and a preview for a real
customer, with missing variables listed."""

from __future__ import annotations

from django import forms
from django.contrib import messages as flash
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from cdp.access import capability_required, user_can
from cdp.models import Event
from cdp.redaction import redact
from connectors.models import MessageTemplate
from connectors.protocol import Channel
from connectors.selectors import customer_lookup, known_trait_names
from connectors.services import template_save
from connectors.templating import FIELDS, TemplateInvalid, body_problems, body_render, variables_context

FIELD_LABELS = {
    "subject": gettext_lazy("Subject"),
    "html": gettext_lazy("HTML body"),
    "text": gettext_lazy("Text"),
    "template_code": gettext_lazy("Provider template code"),
    "params": gettext_lazy("Parameters (one “name: value” a line)"),
    "template_id": gettext_lazy("WeChat template id"),
    "url": gettext_lazy("Link"),
    "fields": gettext_lazy("Template fields (one “name: value” a line)"),
    "script_id": gettext_lazy("Call script id"),
    "payload": gettext_lazy("JSON payload"),
}


def _lines_to_mapping(text: str) -> dict[str, str]:
    mapping = {}
    for line in text.splitlines():
        if line.strip():
            name, _sep, value = line.partition(":")
            mapping[name.strip()] = value.strip()
    return mapping


def _mapping_to_lines(mapping: dict) -> str:
    return "\n".join(f"{name}: {value}" for name, value in (mapping or {}).items())


def template_form_class(channel: str) -> type[forms.Form]:
    fields: dict[str, forms.Field] = {
        "key": forms.SlugField(
            label=_("Key"), max_length=100, help_text=_("Journeys refer to the template by it.")
        ),
        "name": forms.CharField(label=_("Name"), max_length=200),
    }
    for name, role in FIELDS[channel].items():
        multiline = role == "mapping" or name in {"html", "text", "payload"}
        widget = forms.Textarea(attrs={"rows": 4}) if multiline else forms.TextInput()
        fields[name] = forms.CharField(
            label=FIELD_LABELS.get(name, name), required=False, widget=widget, strip=False
        )
    fields["allow_unknown"] = forms.BooleanField(
        label=_("Save even if no customer has some of the variables"), required=False
    )
    return type("TemplateForm", (forms.Form,), fields)


def _body_from(channel: str, cleaned: dict) -> dict:
    body = {}
    for name, role in FIELDS[channel].items():
        value = cleaned.get(name) or ""
        if role == "mapping":
            if value.strip():
                body[name] = _lines_to_mapping(value)
        elif value.strip():
            body[name] = value
    return body


@capability_required("view_messages")
def templates_index(request):
    return render(
        request,
        "connectors/templates.html",
        {"templates": MessageTemplate.objects.order_by("name"), "channels": Channel.LABELS.items()},
    )


@capability_required("manage_journeys")
def template_edit(request, template_id: int | None = None, channel: str = ""):
    template = get_object_or_404(MessageTemplate, pk=template_id) if template_id else None
    channel = template.channel if template else channel
    if channel not in FIELDS:
        raise Http404
    form_class = template_form_class(channel)
    initial = {}
    if template is not None:
        initial = {"key": template.key, "name": template.name}
        for name, role in FIELDS[channel].items():
            value = template.body.get(name, "")
            initial[name] = _mapping_to_lines(value) if role == "mapping" else value
    form = form_class(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            saved = template_save(
                key=form.cleaned_data["key"],
                name=form.cleaned_data["name"],
                channel=channel,
                body=_body_from(channel, form.cleaned_data),
                known_traits=known_trait_names(),
                template=template,
                allow_unknown=form.cleaned_data["allow_unknown"],
                actor=request.user,
            )
        except ValidationError as error:
            for field, problems in error.message_dict.items():
                target = field.split(".")[0]
                form.add_error(target if target in form.fields else None, problems)
        else:
            flash.success(request, _("Template “%(name)s” saved.") % {"name": saved.name})
            return redirect("message_template", template_id=saved.pk)
    return render(
        request,
        "connectors/template_edit.html",
        {"form": form, "template": template, "channel": channel, "channel_label": Channel.LABELS[channel]},
    )


@capability_required("manage_journeys")
@require_POST
def template_preview(request, channel: str):
    """Renders the form's current fields for a real customer (and their latest event's properties):
    an authoring tool, for those who write templates. Without ``view_pii`` the customer's phones,
    emails and ID numbers are masked in what the template reads and in what it renders."""
    if channel not in FIELDS:
        raise Http404
    show_pii = user_can(request.user, "view_pii")
    form = template_form_class(channel)(request.POST)
    form.is_valid()
    body = _body_from(channel, form.cleaned_data)
    query = request.POST.get("preview_customer", "").strip()
    customer = None
    if query:
        customer = customer_lookup(query, user=request.user)
    context = {"customer": customer, "query": query, "problems": body_problems(channel=channel, body=body)}
    if customer is not None and not context["problems"]:
        event = Event.objects.filter(customer=customer).order_by("-timestamp").first()
        try:
            rendered = body_render(
                channel=channel,
                body=body,
                context=variables_context(
                    customer=customer, event_properties=event.properties if event else {}, show_pii=show_pii
                ),
            )
            context.update(
                rendered=redact(rendered.content, show_pii=show_pii), missing=rendered.missing, event=event
            )
        except TemplateInvalid as error:
            context["problems"] = error.problems
    return render(request, "connectors/_template_preview.html", context)
