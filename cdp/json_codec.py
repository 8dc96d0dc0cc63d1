"""JSON for the ingestion path, where every request and every event is encoded and decoded: orjson
(several times faster than the standard library), falling back to the standard library wherever
orjson would answer differently, so that what is accepted and stored never depends on the codec."""

from __future__ import annotations

import json
from decimal import Decimal

import orjson

# orjson reads integers beyond 64 bits as floats (an order number of 20 digits would lose digits);
# bodies with a run of 19 digits go to the standard library, which keeps them exact. Found by
# mapping every digit to "0" and the rest to " " (a regular expression is ten times slower).
_DIGITS_AS_ZEROS = bytes(48 if chr(byte).isdigit() and byte < 128 else 32 for byte in range(256))
_LONG_RUN = b"0" * 19


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def loads(raw: bytes | str):
    """Parses JSON; raises ValueError (or RecursionError) as ``json.loads`` does."""
    raw = raw.encode() if isinstance(raw, str) else raw
    if _LONG_RUN not in raw.translate(_DIGITS_AS_ZEROS):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # the standard library says what is wrong, in its words
    return json.loads(raw, parse_constant=_refuse_constant)


def _default(value):
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value) -> bytes:
    """Compact UTF-8 JSON (times as ISO 8601, decimals as strings)."""
    try:
        return orjson.dumps(value, default=_default)
    except TypeError:  # integers beyond 64 bits
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def dumps_text(value) -> str:
    return dumps(value).decode()
