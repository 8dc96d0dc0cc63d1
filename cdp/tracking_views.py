"""HTTP endpoints of the tracking API (Segment's spec at /v1/...); public, authenticated by write key."""

from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from cdp.ingest import inbox_store
from cdp.tracking import TrackingError, accept


def _endpoint(kind: str | None):
    @csrf_exempt
    @login_not_required
    @require_POST
    def view(request):
        try:
            accepted = accept(request, kind)
        except TrackingError as error:
            response = JsonResponse({"success": False, "error": error.message}, status=error.status)
            if error.status == 401:
                response["WWW-Authenticate"] = 'Basic realm="tracking"'
            return response
        inbox_store(source=accepted.source, events=accepted.events)
        return JsonResponse({"success": True})

    view.__name__ = f"track_{kind or 'batch'}"
    return view


identify = _endpoint("identify")
track = _endpoint("track")
page = _endpoint("page")
screen = _endpoint("screen")
group = _endpoint("group")
alias = _endpoint("alias")
batch = _endpoint(None)
