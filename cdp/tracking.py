"""The tracking API: Segment's HTTP tracking spec, so Segment's and RudderStack's client libraries
work unchanged. A 200 means the events are committed to the inbox (``IngestBatch``); identity
resolution, the event store and rollups follow in the ingest workers within moments."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import time
import uuid
import zlib
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from cdp import json_codec
from cdp.identity import TRAIT_IDENTIFIERS, normalise_phone
from cdp.ingest import inbox_store
from cdp.models import Source, event_name_reserved
from cdp.services import FUTURE_SKEW
from cdp.tracking_limits import Bucket, refusal_remember, refused_for, retry_after, tokens_take

EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
# JSON nested deeper than this is refused: no client sends it, and encoding it again (the event's
# size, the inbox) would recurse past Python's limit.
MAX_NESTING = 64
KINDS = ("identify", "track", "page", "screen", "group", "alias")
# The name an event of each kind is stored under (track events keep their own name).
KIND_EVENT_NAMES = {
    "identify": "identify",
    "page": "page_viewed",
    "screen": "screen_viewed",
    "group": "group",
    "alias": "alias",
}


class TrackingError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class AcceptedRequest:
    source: Source
    events: list[dict]


@dataclass(frozen=True)
class TrackingRequest:
    """What the API reads of an HTTP request, whichever server passed it on."""

    body: bytes
    authorization: str = ""
    content_encoding: str = ""
    content_length: int = 0
    address: str = ""  # the client's IP address, as the server (or the trusted proxy) saw it


# Browsers post from the customer's own sites (analytics.js): any origin may send, with the write key
# as its credential (no cookies).
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Content-Encoding",
    "Access-Control-Max-Age": "86400",
}


def client_address(remote: str, forwarded_for: str = "") -> str:
    """The client's address: the peer's, or behind the TLS proxy (``BEHIND_TLS_PROXY``) the one the
    proxy appended to X-Forwarded-For (the last entry; earlier ones are the client's own claims)."""
    if settings.BEHIND_TLS_PROXY and forwarded_for:
        return forwarded_for.rsplit(",", 1)[-1].strip()[:64]
    return (remote or "")[:64]


def _write_key(header: str, body: dict | None) -> str | None:
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip()).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise TrackingError(401, "The Authorization header is not valid Basic authentication.") from None
        return decoded.split(":", 1)[0] or None
    if isinstance(body, dict) and isinstance(body.get("writeKey"), str):
        return body["writeKey"]
    return None


# Sources by write key, read once per process every few seconds rather than on every request: a
# new key, a rotation or a disabled source takes effect everywhere within SOURCE_CACHE_SECONDS (and
# at once in the process that made the change).
SOURCE_CACHE_SECONDS = 2.0
_sources: dict[str, tuple[float, Source | None]] = {}


def sources_forget() -> None:
    _sources.clear()


def _source_by_key(write_key: str) -> Source | None:
    now = time.monotonic()
    cached = _sources.get(write_key)
    if cached is not None and now - cached[0] < SOURCE_CACHE_SECONDS:
        return cached[1]
    if len(_sources) > 10_000:  # unknown keys from a scanner must not grow it without bound
        _sources.clear()
    source = Source.objects.filter(write_key=write_key).first()
    _sources[write_key] = (now, source)
    return source


def source_for(request: TrackingRequest, body: dict | None) -> Source:
    write_key = _write_key(request.authorization, body)
    if not write_key:
        raise TrackingError(401, "No write key: send it as the Basic auth user name or as writeKey.")
    source = _source_by_key(write_key)
    if source is None:
        raise TrackingError(401, "Unknown write key.")
    if not source.enabled:
        raise TrackingError(403, f"The source “{source.name}” is disabled.")
    return source


def _too_large(size: int) -> TrackingError:
    return TrackingError(413, f"The request is {size} bytes; the limit is {MAX_BATCH_BYTES} bytes.")


def read_body(request: TrackingRequest) -> dict:
    gzipped = request.content_encoding.lower() == "gzip"
    if request.content_length > MAX_BATCH_BYTES:  # servers check it before reading the body too
        raise _too_large(request.content_length)
    raw = request.body
    if gzipped:
        # Inflate at most one byte past the limit: a small "gzip bomb" cannot fill the memory.
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            raw = inflater.decompress(raw, MAX_BATCH_BYTES + 1)
        except zlib.error:
            raise TrackingError(400, "The body is not valid gzip.") from None
        if len(raw) > MAX_BATCH_BYTES or inflater.unconsumed_tail:
            raise _too_large(len(raw))
    elif len(raw) > MAX_BATCH_BYTES:
        raise _too_large(len(raw))
    if b"\\u0000" in raw or b"\x00" in raw:
        raise TrackingError(400, "The body contains a NUL character, which cannot be stored.")
    try:
        body = json_codec.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TrackingError(400, f"The body is not valid JSON: {exc}") from None
    except RecursionError:
        raise TrackingError(400, "The body is nested too deeply.") from None
    if not isinstance(body, dict):
        raise TrackingError(400, "The body must be a JSON object.")
    if _nested_deeper_than(body, MAX_NESTING):
        raise TrackingError(400, f"The body is nested too deeply (at most {MAX_NESTING} levels).")
    return body


def _nested_deeper_than(value, limit: int) -> bool:
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _parse_time(value, field: str) -> dt.datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise TrackingError(400, f"{field} must be an ISO 8601 date-time string.")
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise TrackingError(400, f"{field} is not an ISO 8601 date-time: {value!r}.") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    if not EARLIEST <= moment <= LATEST:
        raise TrackingError(400, f"{field} is out of range (2000 to 2100): {value!r}.")
    return moment


def _clean_message(
    message, kind: str, where: str, sent_at: dt.datetime | None, now: dt.datetime, source: Source
) -> dict:
    if not isinstance(message, dict):
        raise TrackingError(400, f"{where} must be a JSON object.")
    size = len(json_codec.dumps(message))
    if size > MAX_EVENT_BYTES:
        raise TrackingError(
            400, f"{where} is {size} bytes; one event may be at most {MAX_EVENT_BYTES} bytes."
        )
    if kind not in KINDS:
        raise TrackingError(400, f"{where}.type must be one of {', '.join(KINDS)}.")
    for field in ("userId", "anonymousId", "previousId", "groupId", "event", "messageId", "name"):
        value = message.get(field)
        if value is not None and not isinstance(value, (str, int)):
            raise TrackingError(400, f"{where}.{field} must be a string.")
    if not message.get("userId") and not message.get("anonymousId"):
        raise TrackingError(400, f"{where} needs a userId or an anonymousId.")
    if kind == "track" and not message.get("event"):
        raise TrackingError(400, f"{where}.event is required for track calls.")
    if (
        kind == "track"
        and not source.trust.may_send_reserved_events
        and event_name_reserved(str(message["event"]))
    ):
        raise TrackingError(
            400,
            f"{where}.event “{message['event']}” is reserved: the product records it itself (or, for "
            f"Subscribed, only a server-side source may), and a {source.kind} source may not send it.",
        )
    if kind == "alias" and not message.get("previousId"):
        raise TrackingError(400, f"{where}.previousId is required for alias calls.")
    if kind == "group" and not message.get("groupId"):
        raise TrackingError(400, f"{where}.groupId is required for group calls.")
    for field in ("properties", "traits", "context"):
        if message.get(field) is not None and not isinstance(message[field], dict):
            raise TrackingError(400, f"{where}.{field} must be a JSON object.")

    timestamp = _parse_time(message.get("timestamp"), f"{where}.timestamp")
    message_sent_at = _parse_time(message.get("sentAt"), f"{where}.sentAt") or sent_at
    # The client's clock may be off: shift its timestamp by how far its sentAt is from our clock.
    if timestamp is not None and message_sent_at is not None:
        timestamp = now - (message_sent_at - timestamp)
    timestamp = timestamp or now
    context = message.get("context") or {}
    if timestamp > now + FUTURE_SKEW:
        # Never later than our clock allows: a future date would win every "newest" comparison
        # (consent, traits) until then. The client's own time stays in the context.
        context = {**context, "clientTimestamp": message.get("timestamp")}
        timestamp = now + FUTURE_SKEW
    name = str(message["event"])[:200] if kind == "track" else KIND_EVENT_NAMES[kind]
    properties = dict(message.get("properties") or {})
    if kind in ("page", "screen") and message.get("name"):
        properties.setdefault("name", message["name"])
    if kind == "group":
        properties.setdefault("groupId", message["groupId"])
    if kind == "alias":
        properties.setdefault("previousId", message["previousId"])
    return {
        "kind": kind,
        "name": name,
        "messageId": str(message.get("messageId") or uuid.uuid4())[:200],
        "userId": message.get("userId"),
        "anonymousId": message.get("anonymousId"),
        "previousId": message.get("previousId"),
        "timestamp": timestamp.isoformat(),
        "properties": properties,
        "traits": message.get("traits") or {},
        "context": context,
    }


def accept(request: TrackingRequest, kind: str | None) -> AcceptedRequest:
    """Validates a request of one kind (or a batch, ``kind=None``).

    Raises TrackingError with the status and a message that names the field and the problem."""
    body = read_body(request)
    source = source_for(request, body)
    now = timezone.now()
    sent_at = _parse_time(body.get("sentAt"), "sentAt")
    if kind is None:
        batch = body.get("batch")
        if not isinstance(batch, list):
            raise TrackingError(400, "batch is required and must be a list of events.")
        events = [
            _clean_message(
                message,
                str(message.get("type", "")) if isinstance(message, dict) else "",
                f"batch[{i}]",
                sent_at,
                now,
                source,
            )
            for i, message in enumerate(batch)
        ]
    else:
        events = [_clean_message(body, kind, "body", sent_at, now, source)]
    _limit(source, request.address, events)
    return AcceptedRequest(source=source, events=events)


def _phones_named(events: list[dict]) -> dict[str, int]:
    """How many of the events name each phone number (normalised), wherever Segment's spec puts it."""
    counts: dict[str, int] = {}
    for event in events:
        context = event["context"] if isinstance(event["context"], dict) else {}
        found = set()
        for traits in (event["traits"], context.get("traits")):
            if isinstance(traits, dict):
                found.update(value for key, value in traits.items() if TRAIT_IDENTIFIERS.get(key) == "phone")
        externals = context.get("externalIds")
        for external in externals if isinstance(externals, list) else []:
            if isinstance(external, dict) and external.get("type") == "phone":
                found.add(external.get("id"))
        for raw in found:
            phone = (
                normalise_phone(raw) if isinstance(raw, (str, int)) and not isinstance(raw, bool) else None
            )
            if phone:
                counts[phone] = counts.get(phone, 0) + 1
    return counts


def _limit(source: Source, address: str, events: list[dict]) -> None:
    """Raises a 429 with Retry-After when the source, its client's address or a phone number the
    events name has sent more than its share (settings ``TRACKING_*``)."""
    trust = source.trust
    buckets = []
    rate = settings.TRACKING_SOURCE_RATE if trust.client_side else settings.TRACKING_TRUSTED_SOURCE_RATE
    if rate:
        buckets.append(Bucket(f"source:{source.pk}", rate, rate * 2))
    if trust.limited_per_address and address and settings.TRACKING_ADDRESS_RATE:
        rate = settings.TRACKING_ADDRESS_RATE
        buckets.append(Bucket(f"address:{source.pk}:{address}", rate, rate * 5))
    per_minute = settings.TRACKING_PHONE_EVENTS_PER_MINUTE
    if trust.client_side and per_minute:
        buckets += [
            Bucket(f"phone:{phone}", per_minute / 60, per_minute, count)
            for phone, count in sorted(_phones_named(events).items())
        ]
    short = tokens_take(buckets)
    if not short:
        return
    for key, wait in short.items():
        if key.startswith("source:"):
            refusal_remember((source.write_key, ""), wait)
        elif key.startswith("address:"):
            refusal_remember((source.write_key, address), wait)
    raise _too_many(max(short.values()))


def _too_many(wait: float) -> TrackingError:
    seconds = retry_after(wait)
    return TrackingError(
        429,
        "Too many requests from this source, this address or for this phone number; "
        f"send again in {seconds} s.",
        {"Retry-After": str(seconds)},
    )


def refused_early(request: TrackingRequest) -> tuple[int, dict, dict] | None:
    """The answer to a request whose key (or key and address) is known to be over its limit, found
    with no I/O and before the body is parsed: a flood costs the server as little as it can. Keys sent
    in the body (analytics.js) take the ordinary path."""
    if request.authorization[:6].lower() != "basic ":
        return None
    try:
        key = base64.b64decode(request.authorization[6:].strip()).decode().split(":", 1)[0]
    except (binascii.Error, UnicodeDecodeError):
        return None
    wait = refused_for((key, ""), (key, request.address))
    if not wait:
        return None
    error = _too_many(wait)
    return error.status, {"success": False, "error": error.message}, error.headers


def tracking_receive(request: TrackingRequest, kind: str | None) -> tuple[int, dict, dict]:
    """The whole of a tracking call: validated, then committed to the inbox. Returns the status, the
    JSON answer and the headers to add (the write-key challenge on a 401)."""
    early = refused_early(request)
    if early is not None:
        return early
    try:
        accepted = accept(request, kind)
    except TrackingError as error:
        headers = {"WWW-Authenticate": 'Basic realm="tracking"'} if error.status == 401 else error.headers
        return error.status, {"success": False, "error": error.message}, headers
    inbox_store(source=accepted.source, events=accepted.events)
    return 200, {"success": True}, {}
