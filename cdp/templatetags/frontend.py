"""Tags that include the built canvas bundle (frontend/dist) using Vite's manifest."""

import json
from functools import lru_cache

from django import template
from django.conf import settings
from django.templatetags.static import static
from django.utils.html import format_html, format_html_join

register = template.Library()
ENTRY = "src/main.jsx"


@lru_cache(maxsize=1)
def _manifest(mtime: float) -> dict:
    return json.loads(settings.FRONTEND_MANIFEST.read_text())


def _entry() -> dict:
    path = settings.FRONTEND_MANIFEST
    if not path.exists():
        raise template.TemplateSyntaxError(
            f"{path} is missing: build the canvas with `make frontend` (or `make run`)."
        )
    return _manifest(path.stat().st_mtime)[ENTRY]


@register.simple_tag
def frontend_assets() -> str:
    entry = _entry()
    styles = format_html_join(
        "",
        '<link rel="stylesheet" href="{}">',
        ((static(f"frontend/{css}"),) for css in entry.get("css", [])),
    )
    script = format_html('<script type="module" src="{}"></script>', static(f"frontend/{entry['file']}"))
    return styles + script
