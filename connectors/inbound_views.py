"""Public endpoints: providers' callbacks, tracked links, unsubscribe links. None needs a login;
each checks what it receives (a signature, a code, a signed token)."""

from __future__ import annotations

import logging

from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from cdp.tracking import client_address
from cdp.tracking_limits import retry_after
from connectors.accounts import kind_instance
from connectors.models import ChannelAccount
from connectors.protocol import CallbackRejected, InboundRequest
from connectors.receipts import (
    callback_reject,
    callback_store,
    inbound_events_record,
    link_click,
    receipts_apply,
    unsubscribe_apply,
    unsubscribe_read,
)

log = logging.getLogger(__name__)
MAX_CALLBACK = 1024 * 1024
KEPT_HEADERS = (
    "content-type",
    "user-agent",
    "x-sandbox-signature",
    "x-sandbox-timestamp",
    "x-sandbox-nonce",
    "x-signature",
)


@csrf_exempt
@login_not_required
@require_POST
def inbound(request, account_id: int):
    """A provider's callback: verified by the account's kind, stored raw once, turned into receipts."""
    account = get_object_or_404(ChannelAccount, pk=account_id)
    body = request.body
    if len(body) > MAX_CALLBACK:
        return HttpResponse(status=413)
    headers = {key.lower(): value for key, value in request.headers.items()}
    connector = kind_instance(account)
    try:
        answer = connector.parse_callback(
            InboundRequest(
                body=body,
                headers=headers,
                query={key: request.GET.get(key, "") for key in request.GET},
                content_type=request.content_type or "",
            )
        )
    except CallbackRejected as error:
        address = client_address(request.META.get("REMOTE_ADDR", ""), headers.get("x-forwarded-for", ""))
        wait = callback_reject(
            account=account, body=body, headers=_kept(headers), problem=str(error), address=address
        )
        if wait:
            seconds = retry_after(wait)
            return HttpResponse(
                f"Too many rejected callbacks from this address; send again in {seconds} s.",
                status=429,
                content_type="text/plain",
                headers={"Retry-After": str(seconds)},
            )
        log.warning("callback for account %s rejected: %s", account.pk, error)
        return HttpResponseBadRequest(str(error), content_type="text/plain")
    stored = callback_store(account=account, body=body, headers=_kept(headers), accepted=True)
    if stored is not None:  # a replay of an accepted callback changes nothing
        matched = receipts_apply(
            account=account, receipts=answer.receipts, raw=body.decode("utf-8", "replace")
        )
        stored.receipt_count = matched
        stored.save(update_fields=["receipt_count"])
        inbound_events_record(account=account, events=answer.events)
    return HttpResponse(answer.body, content_type=answer.content_type)


def _kept(headers: dict) -> dict:
    return {key: value for key, value in headers.items() if key in KEPT_HEADERS}


@login_not_required
def link(request, code: str):
    target = link_click(code=code)
    if target is None:
        raise Http404
    return HttpResponseRedirect(target)


@csrf_exempt  # mail clients' one-click unsubscribe (RFC 8058) posts without a token of ours
@login_not_required
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token: str):
    found = unsubscribe_read(token)
    if found is None:
        raise Http404
    customer_id, channel = found
    done = False
    if request.method == "POST":
        done = unsubscribe_apply(customer_id=customer_id, channel=channel)
    return render(request, "connectors/unsubscribe.html", {"done": done, "channel": channel})
