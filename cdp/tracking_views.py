"""HTTP endpoints of the tracking API (Segment's spec at /v1/...); public, authenticated by write key.

Under ASGI the same calls are answered by ``cdp.tracking_asgi`` before Django's middleware (they need
none of it); these views answer them everywhere else (WSGI, the test client)."""

from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from cdp.tracking import CORS_HEADERS, MAX_BATCH_BYTES, TrackingRequest, client_address, tracking_receive


def _endpoint(kind: str | None):
    @csrf_exempt
    @login_not_required
    @require_http_methods(["POST", "OPTIONS"])
    def view(request):
        if request.method == "OPTIONS":  # a browser's preflight
            return HttpResponse(status=204, headers=CORS_HEADERS)
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        status, answer, headers = tracking_receive(
            TrackingRequest(
                # A body over the limit is refused unread.
                body=request.body if declared <= MAX_BATCH_BYTES else b"",
                authorization=request.headers.get("Authorization", ""),
                content_encoding=request.headers.get("Content-Encoding", ""),
                content_length=declared,
                address=client_address(
                    request.META.get("REMOTE_ADDR", ""), request.headers.get("X-Forwarded-For", "")
                ),
            ),
            kind,
        )
        return JsonResponse(answer, status=status, headers={**CORS_HEADERS, **headers})

    view.__name__ = f"track_{kind or 'batch'}"
    return view


identify = _endpoint("identify")
track = _endpoint("track")
page = _endpoint("page")
screen = _endpoint("screen")
group = _endpoint("group")
alias = _endpoint("alias")
batch = _endpoint(None)
