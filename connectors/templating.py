"""Message templates: a sandboxed template language (Jinja2's ``SandboxedEnvironment``) over the
customer's traits and the triggering event's properties, with missing variables reported."""

from __future__ import annotations

import functools
import json
import re
import string
import threading
import time
from dataclasses import dataclass, field

from django.utils.translation import gettext as _
from jinja2 import TemplateSyntaxError, Undefined, nodes
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from cdp.redaction import redact
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


# What one template may cost. Every operation that could take long or build something huge (a big
# power, a repetition, a padding width, a loop) is refused before it runs: CPython's big-integer
# arithmetic holds the interpreter lock, so no timer could stop it once it started. The deadline
# below only catches many cheap steps (loops, calls), each of which checks it.
MAX_TEMPLATE_CHARS = 100_000
MAX_LOOP_DEPTH = 3
MAX_LOOP_ITERATIONS = 100_000  # all loops of one render together
MAX_TEXT_CHARS = 200_000  # any text or list a template builds, and each field's output
MAX_NUMBER_BITS = 4096  # about 1,200 decimal digits
MAX_WIDTH = 1_000  # a padding width or a format's precision
MAX_RANGE = 10_000
RENDER_SECONDS = 2.0


class TemplateTooCostly(SecurityError):
    """An operation the template asked for would cost too much: refused before it ran."""


def _deadline_check() -> None:
    deadline = getattr(_local, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise TemplateTooCostly(
            _("The template took longer than %(seconds)s seconds to render.") % {"seconds": RENDER_SECONDS}
        )


def _size_checked(value):
    if isinstance(value, str | list | tuple) and len(value) > MAX_TEXT_CHARS:
        raise TemplateTooCostly(
            _("The template builds a text or list longer than %(limit)s.") % {"limit": MAX_TEXT_CHARS}
        )
    return value


def _integer(value) -> bool:
    return isinstance(value, int)


def _sequence(value) -> bool:
    return isinstance(value, str | list | tuple)


def _power(base, exponent):
    if (
        _integer(base)
        and _integer(exponent)
        and abs(base) > 1
        and abs(base).bit_length() * exponent > MAX_NUMBER_BITS
    ):
        raise TemplateTooCostly(
            _("The exponent is too large: %(base)s ** %(exponent)s has more than %(digits)s digits.")
            % {"base": base, "exponent": exponent, "digits": MAX_NUMBER_BITS * 3 // 10}
        )
    return base**exponent


def _times(left, right):
    if _integer(left) and _integer(right):
        if left.bit_length() + right.bit_length() > MAX_NUMBER_BITS:
            raise TemplateTooCostly(
                _("The product is too large: more than %(digits)s digits.")
                % {"digits": MAX_NUMBER_BITS * 3 // 10}
            )
    elif (_sequence(left) and _integer(right)) or (_integer(left) and _sequence(right)):
        sequence, count = (left, right) if _sequence(left) else (right, left)
        if len(sequence) * max(count, 0) > MAX_TEXT_CHARS:
            raise TemplateTooCostly(
                _("The repetition is too large: %(length)s × %(count)s is more than %(limit)s.")
                % {"length": len(sequence), "count": count, "limit": MAX_TEXT_CHARS}
            )
    return left * right


def _plus(left, right):
    if _sequence(left) and _sequence(right) and len(left) + len(right) > MAX_TEXT_CHARS:
        raise TemplateTooCostly(
            _("The template builds a text or list longer than %(limit)s.") % {"limit": MAX_TEXT_CHARS}
        )
    return left + right


# %-formatting: a width or precision, literal or taken from the arguments (*).
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?")


def _format_checked(text: str) -> None:
    for width, precision in _PERCENT_SPEC.findall(text):
        for number in (width, precision):
            if number == "*" or (number and int(number) > MAX_WIDTH):
                raise TemplateTooCostly(
                    _("A width or precision in the format is too large (at most %(limit)s).")
                    % {"limit": MAX_WIDTH}
                )


def _brace_format_checked(text: str) -> None:
    for _literal, _name, spec, _conversion in string.Formatter().parse(text):
        if spec and ("{" in spec or any(int(n) > MAX_WIDTH for n in re.findall(r"\d+", spec))):
            raise TemplateTooCostly(
                _("A width or precision in the format is too large (at most %(limit)s).")
                % {"limit": MAX_WIDTH}
            )


def _modulo(left, right):
    if isinstance(left, str):
        _format_checked(left)
    return left % right


def _width_checked(width) -> None:
    if isinstance(width, str):
        width = len(width)
    if _integer(width) and width > MAX_WIDTH:
        raise TemplateTooCostly(
            _("The width %(width)s is too large (at most %(limit)s).") % {"width": width, "limit": MAX_WIDTH}
        )


def _replace_checked(text, old, new, count=-1) -> None:
    text, old, new = str(text), str(old), str(new)
    times = len(text) + 1 if old == "" else text.count(old)
    if count is not None and _integer(count) and count >= 0:
        times = min(times, count)
    if len(text) + times * len(new) > MAX_TEXT_CHARS:
        raise TemplateTooCostly(
            _("The replacement builds a text longer than %(limit)s.") % {"limit": MAX_TEXT_CHARS}
        )


def _join_checked(separator, items: list) -> None:
    if len(str(separator)) * len(items) > MAX_TEXT_CHARS:
        raise TemplateTooCostly(
            _("The join builds a text longer than %(limit)s.") % {"limit": MAX_TEXT_CHARS}
        )


def _bounded_range(*args):
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise TemplateTooCostly(_("A range may hold at most %(limit)s numbers.") % {"limit": MAX_RANGE})
    return numbers


def _checked_filters(filters: dict) -> dict:
    """The built-in filters whose arguments can make them costly, each checked before it runs."""
    stock = dict(filters)

    def center(value, width=80):
        _width_checked(width)
        return stock["center"](value, width)

    def indent(value, width=4, *args, **kwargs):
        _width_checked(width)
        text = str(value)
        _size_checked(" " * ((text.count("\n") + 1) * (width if _integer(width) else len(str(width)))) + text)
        return stock["indent"](value, width, *args, **kwargs)

    def format_(value, *args, **kwargs):
        _format_checked(str(value))
        return stock["format"](value, *args, **kwargs)

    def replace(eval_ctx, value, old, new, count=None):
        _replace_checked(value, old, new, -1 if count is None else count)
        return stock["replace"](eval_ctx, value, old, new, count)

    def join(eval_ctx, value, d="", attribute=None):
        items = list(value)
        _join_checked(d, items)
        return stock["join"](eval_ctx, items, d, attribute)

    def wordwrap(environment, value, width=79, break_long_words=True, wrapstring=None, break_on_hyphens=True):
        text = str(value)
        if (
            wrapstring is not None
            and len(str(wrapstring)) * (len(text) // max(int(width), 1) + 1) > MAX_TEXT_CHARS
        ):
            raise TemplateTooCostly(
                _("The wrap builds a text longer than %(limit)s.") % {"limit": MAX_TEXT_CHARS}
            )
        return stock["wordwrap"](environment, value, width, break_long_words, wrapstring, break_on_hyphens)

    def batch(value, linecount, fill_with=None):
        if _integer(linecount) and linecount > MAX_RANGE:
            raise TemplateTooCostly(_("A batch may hold at most %(limit)s items.") % {"limit": MAX_RANGE})
        return stock["batch"](value, linecount, fill_with)

    def slice_(value, slices, fill_with=None):
        if _integer(slices) and slices > MAX_RANGE:
            raise TemplateTooCostly(_("At most %(limit)s slices.") % {"limit": MAX_RANGE})
        return stock["slice"](value, slices, fill_with)

    replace.jinja_pass_arg = stock["replace"].jinja_pass_arg  # type: ignore[attr-defined]
    join.jinja_pass_arg = stock["join"].jinja_pass_arg  # type: ignore[attr-defined]
    wordwrap.jinja_pass_arg = stock["wordwrap"].jinja_pass_arg  # type: ignore[attr-defined]
    checked = {
        "center": center,
        "indent": indent,
        "format": format_,
        "replace": replace,
        "join": join,
        "wordwrap": wordwrap,
        "batch": batch,
        "slice": slice_,
    }
    return {**stock, **checked}


# Text methods whose first argument is a width.
_WIDTH_METHODS = {"center", "ljust", "rjust", "zfill", "expandtabs"}


class _BoundedCodeGenerator(CodeGenerator):
    """``a ~ b`` (concatenation) is not an operator the sandbox intercepts: its result is checked."""

    def visit_Concat(self, node: nodes.Concat, frame) -> None:
        self.write("environment.concat_checked(")
        super().visit_Concat(node, frame)
        self.write(")")


class _Sandbox(ImmutableSandboxedEnvironment):
    """Refuses unsafe attribute access outright (the stock sandbox renders it as empty), and every
    operation that would cost too much (see the limits above)."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"**", "*", "+", "%"})
    binop_checks = {"**": _power, "*": _times, "+": _plus, "%": _modulo}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.filters = _checked_filters(self.filters)
        self.globals = {name: value for name, value in self.globals.items() if name != "lipsum"}
        self.globals["range"] = _bounded_range

    def unsafe_undefined(self, obj, attribute):
        raise SecurityError(f"access to attribute {attribute!r} of a {type(obj).__name__} is not allowed")

    def call_binop(self, context, operator, left, right):
        _deadline_check()
        return _size_checked(self.binop_checks[operator](left, right))

    def call(__self, __context, __obj, *args, **kwargs):
        _deadline_check()
        # The sandbox wraps str.format in a function of its own: the text is the wrapped method's.
        owner = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str):
            if name in _WIDTH_METHODS and args:
                _width_checked(args[0])
            elif name == "replace" and len(args) >= 2:
                _replace_checked(owner, *args[:3])
            elif name == "join" and args:
                args = (list(args[0]), *args[1:])
                _join_checked(owner, args[0])
            elif name in {"format", "format_map"}:
                _brace_format_checked(owner)
        return _size_checked(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj, attribute):
        _deadline_check()
        return super().getattr(obj, attribute)

    def concat_checked(self, text):
        return _size_checked(text)

    def loop_checked(self, iterable):
        """Every loop's items, counted against the render's budget and its deadline."""
        for item in iterable:
            _local.iterations = getattr(_local, "iterations", 0) + 1
            if _local.iterations > MAX_LOOP_ITERATIONS:
                raise TemplateTooCostly(
                    _("The template's loops run more than %(limit)s times.") % {"limit": MAX_LOOP_ITERATIONS}
                )
            _deadline_check()
            yield item

    def _parse(self, source, name, filename):
        if len(source) > MAX_TEMPLATE_CHARS:
            raise TemplateTooCostly(
                _("The template is too long: %(length)s characters, at most %(limit)s.")
                % {"length": len(source), "limit": MAX_TEMPLATE_CHARS}
            )
        try:
            tree = super()._parse(source, name, filename)
        except RecursionError:
            raise TemplateTooCostly(_("The template is nested too deeply.")) from None
        _loops_bounded(tree, depth=0)
        return tree


def _loops_bounded(node: nodes.Node, *, depth: int) -> None:
    """Refuses loops nested too deeply and recursive loops; makes every loop count its items."""
    for child in node.iter_child_nodes():
        if isinstance(child, nodes.For):
            if child.recursive:
                raise TemplateTooCostly(_("Recursive loops are not allowed in a template."))
            if depth + 1 > MAX_LOOP_DEPTH:
                raise TemplateTooCostly(
                    _("Loops are nested too deeply (at most %(limit)s levels).") % {"limit": MAX_LOOP_DEPTH}
                )
            child.iter = nodes.Call(nodes.EnvironmentAttribute("loop_checked"), [child.iter], [], None, None)
            _loops_bounded(child, depth=depth + 1)
        else:
            _loops_bounded(child, depth=depth)


def _json_text(value):
    """A webhook payload's value, JSON-encoded: a text is escaped to sit between the template's
    quotes, anything else is written as JSON, so a customer's data can never add a field."""
    if isinstance(value, Undefined):
        return ""
    if isinstance(value, Markup):  # |tojson's answer, already JSON
        return value
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)[1:-1]
    if isinstance(value, bool | int | float | list | tuple | dict) or value is None:
        return json.dumps(value, ensure_ascii=False, default=str)
    return json.dumps(str(value), ensure_ascii=False)[1:-1]


ENV = _Sandbox(undefined=_RecordingUndefined, autoescape=False)
HTML_ENV = _Sandbox(undefined=_RecordingUndefined, autoescape=True)
JSON_ENV = _Sandbox(undefined=_RecordingUndefined, autoescape=False, finalize=_json_text)


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
    """A syntax error, or what the template would cost too much for (tried with no customer)."""
    if not isinstance(text, str):
        return _("Give a text.")
    try:
        ENV.compile(text)
    except TemplateTooCostly as error:
        return str(error)
    except TemplateSyntaxError as error:
        return _("Line %(line)s: %(problem)s") % {"line": error.lineno, "problem": error.message}
    except (ValueError, RecursionError, MemoryError) as error:
        return _("The template cannot be read: %(error)s") % {"error": error}
    missing, _local.missing = getattr(_local, "missing", None), set()
    try:
        _output(ENV.from_string(text), variables_context(customer=None))
    except TemplateTooCostly as error:
        return str(error)
    except Exception:  # noqa: S110
        pass  # other errors depend on the customer's data: the preview shows them
    finally:
        _local.missing = missing
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


def variables_context(*, customer, event_properties: dict | None = None, show_pii: bool = True) -> dict:
    """What a template reads. A preview for someone without ``view_pii`` reads masked traits and
    properties, so no filter or slice in the template can put a full phone back together."""
    traits = redact(dict(customer.traits or {}), show_pii=show_pii) if customer is not None else {}
    return {
        "customer": _scoped(
            {"id": getattr(customer, "pk", None), "name": getattr(customer, "name", ""), **traits}, "customer"
        ),
        "traits": _scoped(traits, "traits"),
        "event": _scoped(redact(dict(event_properties or {}), show_pii=show_pii), "event"),
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
            content["payload"] = _payload_parsed(content["payload"])
    finally:
        _local.missing = None
    return Rendered(content=content, missing=sorted(missing))


def _payload_parsed(text: str) -> dict:
    try:
        payload = json.loads(text)
    except ValueError as error:
        raise TemplateInvalid(
            {"payload": _("The rendered payload is not JSON: %(error)s") % {"error": error}}
        ) from None
    if not isinstance(payload, dict):
        raise TemplateInvalid({"payload": _("The payload must be a JSON object ({…}).")})
    return payload


@functools.lru_cache(maxsize=1024)
def _compiled(text: str, flavour: str):
    """A text compiled once per process: a journey's send renders one template for thousands."""
    return {"html": HTML_ENV, "json": JSON_ENV}.get(flavour, ENV).from_string(text)


def _flavour(field_name: str) -> str:
    # The webhook's payload is JSON: values are JSON-encoded where they are written.
    return {"html": "html", "payload": "json"}.get(field_name, "text")


def _output(template, context: dict) -> str:
    """Renders with the limits: a deadline checked by every loop, call and operation, and the size
    of what comes out."""
    _local.deadline, _local.iterations = time.monotonic() + RENDER_SECONDS, 0
    try:
        parts, size = [], 0
        for part in template.generate(context):
            size += len(part)
            if size > MAX_TEXT_CHARS:
                raise TemplateTooCostly(
                    _("The rendered text is longer than %(limit)s characters.") % {"limit": MAX_TEXT_CHARS}
                )
            _deadline_check()
            parts.append(part)
        return "".join(parts)
    finally:
        _local.deadline = None


def _render(text: str, context: dict, field_name: str) -> str:
    try:
        return _output(_compiled(text, _flavour(field_name)), context)
    except TemplateTooCostly as error:
        raise TemplateInvalid({field_name: str(error)}) from None
    except SecurityError as error:
        raise TemplateInvalid(
            {field_name: _("Not allowed in a template: %(error)s") % {"error": error}}
        ) from None
    except TemplateSyntaxError as error:
        raise TemplateInvalid({field_name: error.message or str(error)}) from None
    except RecursionError:
        raise TemplateInvalid({field_name: _("The template is nested too deeply.")}) from None
    except Exception as error:  # any other failure of a marketer's template is theirs to fix
        raise TemplateInvalid({field_name: str(error) or type(error).__name__}) from None
