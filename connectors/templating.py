"""Message templates: a sandboxed template language (Jinja2's ``SandboxedEnvironment``) over the
customer's traits and the triggering event's properties, with missing variables reported."""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass, field

from django.utils.translation import gettext as _
from jinja2 import TemplateSyntaxError, Undefined
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from connectors.protocol import Channel

# Per channel: the body fields, which are required, and which hold a mapping of name -> template.
FIELDS: dict[str, dict[str, str]] = {
    Channel.SMS: {"template_code": "required", "params": "mapping", "text": "optional"},
    Channel.EMAIL: {"subject": "required", "html": "optional", "text": "optional"},
    Channel.WECHAT_TEMPLATE: {"template_id": "required", "url": "optional", "fields": "mapping"},
    Channel.WECOM: {"text": "required"},
    Channel.CALL: {"script_id": "required", "params": "mapping"},
    Channel.WEBHOOK: {"payload": "required"},
}


class _RecordingUndefined(Undefined):
    """Renders as empty text and notes the variable's dotted name, so every missing one is listed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        name = self._undefined_name or "?"
        parent = getattr(self._undefined_obj, "_dotted", None) if self._undefined_obj is not None else None
        self._dotted = f"{parent}.{name}" if parent else str(name)
        missing = _missing_sink()
        if missing is not None:
            missing.add(self._dotted)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _RecordingUndefined(obj=self, name=name)

    def __getitem__(self, name):
        return _RecordingUndefined(obj=self, name=str(name))


_local = threading.local()


def _missing_sink() -> set[str] | None:
    return getattr(_local, "missing", None)


class _Sandbox(SandboxedEnvironment):
    """Refuses unsafe attribute access outright (the stock sandbox renders it as empty)."""

    def unsafe_undefined(self, obj, attribute):
        raise SecurityError(f"access to attribute {attribute!r} of a {type(obj).__name__} is not allowed")


ENV = _Sandbox(undefined=_RecordingUndefined, autoescape=False)
HTML_ENV = _Sandbox(undefined=_RecordingUndefined, autoescape=True)


@dataclass
class Rendered:
    content: dict
    missing: list[str] = field(default_factory=list)


class TemplateInvalid(Exception):
    """Problems by field (``params.code``), each a sentence a marketer can act on."""

    def __init__(self, problems: dict[str, str]):
        super().__init__(problems)
        self.problems = problems


def body_problems(*, channel: str, body: dict) -> dict[str, str]:
    """Every problem of a template body: unknown channel, missing required fields, syntax errors."""
    if channel not in FIELDS:
        return {"channel": _("Unknown channel kind “%(kind)s”.") % {"kind": channel}}
    problems: dict[str, str] = {}
    spec = FIELDS[channel]
    for name in body:
        if name not in spec:
            problems[name] = _("This channel has no field “%(name)s”.") % {"name": name}
    for name, role in spec.items():
        value = body.get(name)
        if role == "required" and not (isinstance(value, str) and value.strip()):
            problems[name] = _("This field is required.")
        if role == "mapping":
            if value is None:
                continue
            if not isinstance(value, dict):
                problems[name] = _("Give a mapping of names to texts.")
                continue
            for key, text in value.items():
                problem = _syntax_problem(text)
                if problem:
                    problems[f"{name}.{key}"] = problem
        elif isinstance(value, str):
            problem = _syntax_problem(value)
            if problem:
                problems[name] = problem
        elif value is not None:
            problems[name] = _("Give a text.")
    if channel == Channel.EMAIL and not (body.get("html") or body.get("text")):
        problems.setdefault("text", _("An email needs an HTML or a text body."))
    return problems


def _syntax_problem(text) -> str:
    if not isinstance(text, str):
        return _("Give a text.")
    try:
        ENV.parse(text)
    except TemplateSyntaxError as error:
        return _("Line %(line)s: %(problem)s") % {"line": error.lineno, "problem": error.message}
    return ""


class _Scope(dict):
    """A dict that knows its dotted name, so a missing key in it is reported as ``traits.company``."""

    _dotted = ""


def _scoped(value, dotted: str):
    if isinstance(value, dict):
        scope = _Scope({key: _scoped(item, f"{dotted}.{key}") for key, item in value.items()})
        scope._dotted = dotted
        return scope
    return value


def variables_context(*, customer, event_properties: dict | None = None) -> dict:
    traits = dict(customer.traits or {}) if customer is not None else {}
    return {
        "customer": _scoped(
            {"id": getattr(customer, "pk", None), "name": getattr(customer, "name", ""), **traits}, "customer"
        ),
        "traits": _scoped(traits, "traits"),
        "event": _scoped(dict(event_properties or {}), "event"),
    }


def body_render(*, channel: str, body: dict, context: dict) -> Rendered:
    """Renders every field; ``missing`` lists each variable the context lacked (rendered empty)."""
    missing: set[str] = set()
    _local.missing = missing
    try:
        content: dict = {}
        for name, value in body.items():
            if isinstance(value, dict):
                content[name] = {key: _render(text, context, name) for key, text in value.items()}
            elif isinstance(value, str):
                content[name] = _render(value, context, name)
        if channel == Channel.WEBHOOK and "payload" in content:
            try:
                content["payload"] = json.loads(content["payload"])
            except ValueError as error:
                raise TemplateInvalid(
                    {"payload": _("The rendered payload is not JSON: %(error)s") % {"error": error}}
                ) from None
    finally:
        _local.missing = None
    return Rendered(content=content, missing=sorted(missing))


@functools.lru_cache(maxsize=1024)
def _compiled(text: str, html: bool):
    """A text compiled once per process: a journey's send renders one template for thousands."""
    return (HTML_ENV if html else ENV).from_string(text)


def _render(text: str, context: dict, field_name: str) -> str:
    try:
        return _compiled(text, field_name == "html").render(context)
    except SecurityError as error:
        raise TemplateInvalid(
            {field_name: _("Not allowed in a template: %(error)s") % {"error": error}}
        ) from None
    except (UndefinedError, TypeError, ValueError) as error:
        raise TemplateInvalid({field_name: str(error)}) from None
    except TemplateSyntaxError as error:
        raise TemplateInvalid({field_name: error.message or str(error)}) from None
