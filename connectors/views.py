"""Pages: channel accounts (admins), messages and their lives, the sandbox outbox."""

from __future__ import annotations

import json
import secrets

from django.contrib import messages as flash
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from cdp.access import capability_required, user_can
from cdp.redaction import redact_fields
from cdp.selectors import customers_visible_to
from connectors.accounts import account_create, account_pause, account_resume, account_update
from connectors.forms import TestSendForm, schema_problems_add, settings_form_class, settings_values
from connectors.models import ChannelAccount, Message
from connectors.protocol import Channel
from connectors.registry import kind_get, kinds
from connectors.sandbox import callback_url
from connectors.selectors import (
    account_summaries,
    customer_lookup,
    in_doubt_count,
    message_life,
    message_search,
    messages_shown,
    sandbox_outbox,
)
from connectors.services import message_enqueue, message_resolve_unknown
from connectors.waiting import message_wait, messages_waits

PAGE = 50


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@capability_required("view_messages")
def messages_index(request):
    params = request.GET
    customer = None
    query = params.get("customer", "").strip()
    if query:
        customer = customer_lookup(query, user=request.user)
    found = customer is not None or not query
    rows = (
        list(
            message_search(
                status=params.get("status", ""),
                channel=params.get("channel", ""),
                account_id=_int(params.get("account")),
                customer_id=customer.pk if customer else None,
                journey_id=_int(params.get("journey")),
                before_id=_int(params.get("before")),
                visible=customers_visible_to(request.user, via="customer"),
            )[: PAGE + 1]
        )
        if found
        else []
    )
    more = len(rows) > PAGE
    rows = messages_shown(
        rows[:PAGE],
        show_pii=user_can(request.user, "view_pii"),
        manages_channels=user_can(request.user, "manage_channels"),
    )
    # Why each queued or held row has not gone yet: the accounts' facts read once for the page.
    waits = messages_waits(rows)
    for message in rows:
        message.wait = waits.get(message.pk)
    context = {
        "rows": rows,
        "more_before": rows[-1].pk if more else None,
        "statuses": Message.Status.choices,
        "in_doubt": in_doubt_count(),
        "channels": Channel.LABELS.items(),
        "accounts": ChannelAccount.objects.order_by("name"),
        "filters": params,
        "customer_not_found": bool(query) and customer is None,
    }
    template = "connectors/_message_rows.html" if request.htmx else "connectors/messages.html"
    return render(request, template, context)


STEP_LABELS = {
    "queued": gettext_lazy("Queued"),
    "attempt": gettext_lazy("Attempt"),
    "receipt": gettext_lazy("Receipt"),
    "unknown": gettext_lazy("In doubt"),
    "resolved": gettext_lazy("Decided by a person"),
}
STATUS_LABELS = dict(Message.Status.choices)


@capability_required("view_messages")
def message_detail(request, message_id: int):
    message = get_object_or_404(
        Message.objects.filter(customers_visible_to(request.user, via="customer")).select_related(
            "account", "customer", "template"
        ),
        pk=message_id,
    )
    life = message_life(message=message)
    messages_shown(
        [message],
        show_pii=user_can(request.user, "view_pii"),
        manages_channels=user_can(request.user, "manage_channels"),
        life=life,
    )
    for step in life:
        step.label = STEP_LABELS.get(step.step, step.step)
        step.status_label = STATUS_LABELS.get(step.status, step.status)
    return render(
        request,
        "connectors/message.html",
        {
            "message": message,
            "life": life,
            "wait": message_wait(message),
            "links": list(message.links.all()),
            "content_json": json.dumps(message.content, ensure_ascii=False, indent=2),
            "can_resolve": user_can(request.user, "send_messages"),
        },
    )


@capability_required("send_messages")
@require_POST
def message_resolve(request, message_id: int):
    message = get_object_or_404(
        Message.objects.filter(customers_visible_to(request.user, via="customer")), pk=message_id
    )
    resend = request.POST.get("decision") == "resend"
    try:
        message_resolve_unknown(message=message, resend=resend, actor=request.user)
    except ValidationError as error:
        flash.error(request, " ".join(error.messages))
    else:
        flash.success(request, _("Sent again.") if resend else _("Marked as sent."))
    return redirect("message", message_id=message.pk)


@capability_required("manage_channels")
def channels(request):
    return render(
        request,
        "connectors/channels.html",
        {
            "accounts": account_summaries(),
            # Plain values: a template would call the classes.
            "kinds": [
                {"key": kind.key, "label": kind.label, "sandbox": kind.sandbox}
                for kind in sorted(kinds().values(), key=lambda kind: (kind.channel, kind.key))
            ],
            "channel_labels": Channel.LABELS,
        },
    )


def _kind_or_404(key: str):
    try:
        return kind_get(key)
    except LookupError:
        raise Http404 from None


def _form_errors(form, error: ValidationError) -> None:
    for field, problems in error.message_dict.items():
        form.add_error(field if field in form.fields else None, problems)


@capability_required("manage_channels")
def channel_new(request, kind: str):
    kind_class = _kind_or_404(kind)
    form_class = settings_form_class(kind_class, generates_secrets=kind_class.sandbox)
    form = form_class(request.POST or None, initial={"name": str(kind_class.label)})
    if request.method == "POST" and not form.is_valid():
        schema_problems_add(form, kind_class)
    elif request.method == "POST":
        values = settings_values(kind_class, form.cleaned_data)
        if kind_class.sandbox:
            values.setdefault("callback_secret", secrets.token_urlsafe(24))
        try:
            account = account_create(
                kind=kind,
                name=form.cleaned_data["name"],
                values=values,
                rate_per_second=form.cleaned_data["rate_per_second"],
                actor=request.user,
            )
        except ValidationError as error:
            _form_errors(form, error)
        else:
            flash.success(request, _("Account “%(name)s” added.") % {"name": account.name})
            return redirect("channel", account_id=account.pk)
    return render(request, "connectors/channel_new.html", {"form": form, "kind_label": kind_class.label})


@capability_required("manage_channels")
def channel_detail(request, account_id: int):
    account = get_object_or_404(ChannelAccount, pk=account_id)
    kind_class = kind_get(account.kind)
    form_class = settings_form_class(kind_class, has_secrets=bool(account.secrets_encrypted))
    initial = {"name": account.name, "rate_per_second": account.rate_per_second, **account.settings}
    form = form_class(request.POST or None, initial=initial)
    if request.method == "POST" and not form.is_valid():
        schema_problems_add(form, kind_class)
    elif request.method == "POST":
        try:
            account_update(
                account=account,
                name=form.cleaned_data["name"],
                values=settings_values(kind_class, form.cleaned_data),
                rate_per_second=form.cleaned_data["rate_per_second"],
                actor=request.user,
            )
        except ValidationError as error:
            _form_errors(form, error)
        else:
            flash.success(request, _("Settings saved."))
            return redirect("channel", account_id=account.pk)
    return render(
        request,
        "connectors/channel.html",
        {
            "account": account,
            "kind_label": kind_class.label,
            "form": form,
            "test_form": TestSendForm(),
            "callback_url": callback_url(account.pk),
            "recent": messages_shown(
                message_search(
                    account_id=account.pk, visible=customers_visible_to(request.user, via="customer")
                )[:20],
                show_pii=user_can(request.user, "view_pii"),
                manages_channels=True,
            ),
        },
    )


@capability_required("manage_channels")
@require_POST
def channel_pause(request, account_id: int):
    account = get_object_or_404(ChannelAccount, pk=account_id)
    if request.POST.get("resume"):
        released = account_resume(account=account, actor=request.user)
        flash.success(request, _("Resumed; %(count)s held messages go out again.") % {"count": released})
    else:
        account_pause(
            account_id=account.pk,
            reason=_("Paused by %(name)s.") % {"name": request.user},
            actor=request.user,
        )
        flash.success(request, _("Paused. Messages wait until you resume the account."))
    return redirect("channel", account_id=account.pk)


TEST_BODIES = {
    Channel.SMS: lambda text: {"template_code": "SMS_TEST", "params": {"text": text}, "text": text},
    Channel.EMAIL: lambda text: {"subject": _("Test message"), "text": text},
    Channel.WECHAT_TEMPLATE: lambda text: {"template_id": "TEST", "fields": {"first": text}},
    Channel.WECOM: lambda text: {"text": text},
    Channel.CALL: lambda text: {"script_id": "test", "params": {"text": text}},
    Channel.WEBHOOK: lambda text: {"payload": json.dumps({"text": text}, ensure_ascii=False)},
}


@capability_required("manage_channels")
@require_POST
def channel_test(request, account_id: int):
    account = get_object_or_404(ChannelAccount, pk=account_id)
    form = TestSendForm(request.POST)
    if not form.is_valid():
        flash.error(request, _("Give a customer and a text."))
        return redirect("channel", account_id=account.pk)
    query = form.cleaned_data["customer"].strip()
    customer = customer_lookup(query, user=request.user)
    if customer is None:
        flash.error(request, _("No customer matches “%(query)s”.") % {"query": query})
        return redirect("channel", account_id=account.pk)
    message, _created = message_enqueue(
        account=account,
        customer=customer,
        idempotency_key=f"test:{account.pk}:{secrets.token_hex(8)}",
        body=TEST_BODIES[account.channel](form.cleaned_data["text"]),
        origin="test",
        actor=request.user,
    )
    if message.status in {Message.Status.SKIPPED, Message.Status.FAILED}:
        flash.error(request, _("Not sent: %(reason)s") % {"reason": _(message.reason)})
    else:
        flash.success(request, _("Test message queued."))
    return redirect("message", message_id=message.pk)


@capability_required("manage_channels")
def sandbox_page(request):
    account_id = _int(request.GET.get("account"))
    return render(
        request,
        "connectors/sandbox.html",
        {
            "deliveries": redact_fields(
                sandbox_outbox(account_id=account_id),
                "recipient",
                "content",
                show_pii=user_can(request.user, "view_pii"),
            ),
            "accounts": ChannelAccount.objects.filter(kind__startswith="sandbox_").order_by("name"),
            "account_id": account_id,
        },
    )
