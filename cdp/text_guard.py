"""PostgreSQL text cannot hold the NUL character (U+0000): a request carrying one in a query parameter
(any page), or in a form field or anywhere in a JSON body (the API), is refused with a 400 naming
where, before it reaches a query (it used to end in a 500). The tracking API refuses it in its own
way (``cdp.tracking``)."""

from __future__ import annotations

from django.http import HttpResponseBadRequest, JsonResponse
from django.utils.translation import gettext as _
from rest_framework import parsers
from rest_framework.exceptions import ValidationError

NUL = "\x00"


def _readable(name: str) -> str:
    return name.replace(NUL, "\\u0000")


def nul_found_at(value, path: str = "") -> str | None:
    """Where in the value (``traits.name``, ``keys[2]``) the first NUL character is; None without one."""
    if isinstance(value, str):
        return path if NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if NUL in str(key):
                return _readable(inner)
            found = nul_found_at(item, inner)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_found_at(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def nul_problem() -> str:
    return _("Text may not contain the NUL character (\\u0000).")


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        where = nul_found_at(data)
        if where is not None:
            raise ValidationError({where or "body": [nul_problem()]})
        return data


class TextGuardMiddleware:
    """Query parameters on every page, and form fields under /api/ (elsewhere a view may need the raw
    body, which reading the form would consume)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        api = request.path.startswith("/api/")
        fields = [request.GET]
        if api and request.content_type in {"application/x-www-form-urlencoded", "multipart/form-data"}:
            fields.append(request.POST)
        for query in fields:
            for name, values in query.lists():
                if NUL in name or any(NUL in value for value in values):
                    if api:
                        return JsonResponse({_readable(name): [nul_problem()]}, status=400)
                    return HttpResponseBadRequest(
                        f"{_readable(name)}: {nul_problem()}", content_type="text/plain"
                    )
        return self.get_response(request)
