"""The tracking API answered straight from ASGI, before Django's request handling.

Tracking calls are the busiest requests by far and need none of the middleware (sessions, CSRF, login,
locale, static files): the write key is their credential. Skipping it, and the thread Django starts
for every request, about halves the server's CPU per call (docs/PERFORMANCE.md). The work itself is
``tracking_receive``, the same function the Django views call, run in the event loop's default
executor (it uses the ORM), whose threads give their connections back after each call
(``cdp.dbconnections``).
"""

from __future__ import annotations

import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from cdp import json_codec
from cdp.tracking import (
    CORS_HEADERS,
    KINDS,
    MAX_BATCH_BYTES,
    TrackingRequest,
    client_address,
    refused_early,
    tracking_receive,
)

# Path -> kind (None: a batch); /v1/import is the name some clients use for batches.
TRACKING_PATHS: dict[str, str | None] = {f"/v1/{kind}": kind for kind in KINDS} | {
    "/v1/batch": None,
    "/v1/import": None,
}
log = logging.getLogger(__name__)
_CORS = [(name.lower().encode(), value.encode()) for name, value in CORS_HEADERS.items()]


def _headers(scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}


async def _body(receive, limit: int) -> tuple[bytes, int]:
    """The request body and its size; past ``limit`` only the size read so far (the body is refused)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", 0
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", size
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), size


async def _answer(send, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    extra = [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    start_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": start_headers + _CORS + extra})
    await send({"type": "http.response.body", "body": body})


async def tracking_app(scope, receive, send, headers: dict[str, str]) -> None:
    kind = TRACKING_PATHS[scope["path"]]
    method = scope["method"]
    if method == "OPTIONS":  # a browser's preflight
        await send({"type": "http.response.start", "status": 204, "headers": _CORS})
        await send({"type": "http.response.body", "body": b""})
        return
    if method != "POST":
        answer = {"success": False, "error": f"{method} is not allowed here; send a POST."}
        await _answer(send, 405, json_codec.dumps(answer), {"Allow": "POST, OPTIONS"})
        return
    try:
        declared = int(headers.get("content-length") or 0)
    except ValueError:
        declared = 0
    # A body over the limit is refused for its size, read no further.
    body, size = await _body(receive, MAX_BATCH_BYTES) if declared <= MAX_BATCH_BYTES else (b"", declared)
    request = TrackingRequest(
        body=body,
        authorization=headers.get("authorization", ""),
        content_encoding=headers.get("content-encoding", ""),
        content_length=max(declared, size),
        address=client_address((scope.get("client") or ("", 0))[0] or "", headers.get("x-forwarded-for", "")),
    )
    early = refused_early(request)  # a key over its limit: answered here, no thread, no parsing
    try:
        if early is not None:
            status, answer, extra = early
        else:
            status, answer, extra = await sync_to_async(tracking_receive, thread_sensitive=False)(
                request, kind
            )
    except Exception:  # nothing was stored (the inbox insert is one statement): the client sends again
        log.exception("a tracking call to %s failed", scope["path"])
        status, extra = 503, {"Retry-After": "1"}
        answer = {"success": False, "error": "The events could not be stored now; send them again."}
    await _answer(send, status, json_codec.dumps(answer), extra)


def _plainly_allowed(scope, headers: dict[str, str]) -> bool:
    """Whether Django would let the request through to a view: a host it serves, and HTTPS where HTTP
    is redirected. Anything else goes to Django, which answers as it does for every page."""
    host = split_domain_port(headers.get("host", ""))[0]
    if not host or not validate_host(host, settings.ALLOWED_HOSTS):
        return False
    if settings.SECURE_SSL_REDIRECT and scope.get("scheme") != "https":
        proxy = settings.SECURE_PROXY_SSL_HEADER
        forwarded = proxy and headers.get(proxy[0].removeprefix("HTTP_").replace("_", "-").lower())
        return bool(proxy) and forwarded == proxy[1]
    return True


def with_tracking(django_app):
    """The HTTP application: tracking calls answered here, everything else by Django."""

    async def application(scope, receive, send):
        if scope["type"] == "http" and scope["path"] in TRACKING_PATHS:
            headers = _headers(scope)
            if _plainly_allowed(scope, headers):
                await tracking_app(scope, receive, send, headers)
                return
        await django_app(scope, receive, send)

    return application
