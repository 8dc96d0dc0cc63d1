"""Identity types, their normalisation and the rules that decide when two customers are one.

An identity is ``(type, value)``: E.164 phones, lower-case emails, ``wechat_openid:<appid>``,
``wechat_unionid``, ``wecom_external_userid``, ``user_id``, ``anonymous_id``, ID numbers (hashed,
with an encrypted copy). Values people type as placeholders (``null``, ``0``, ``anonymous``, ...)
never identify anyone.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

from cdp.keys import identity_hash_key, pii_keyring
from cdp.redaction import ID_NUMBER as ID_NUMBER_IN_TEXT
from cdp.redaction import pii_kind

BLOCKED_VALUES = frozenset(
    {"", "null", "none", "nil", "undefined", "nan", "0", "-", "n/a", "na", "anonymous", "unknown", "test"}
)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ID_NUMBER = re.compile(r"^[0-9A-Z]{6,30}$")


@dataclass(frozen=True)
class IdentityType:
    name: str
    # Higher wins: when two customers cannot merge, the event goes to the one its strongest identity names.
    priority: int
    # How many values of this type one customer may hold; a merge that would exceed it goes to review.
    max_per_customer: int | None
    sensitive: bool = False


IDENTITY_TYPES = {
    identity_type.name: identity_type
    for identity_type in (
        IdentityType("id_number", 100, 1, sensitive=True),
        IdentityType("user_id", 90, None),
        IdentityType("wechat_unionid", 80, 1),
        IdentityType("phone", 70, None),
        IdentityType("email", 60, None),
        IdentityType("wecom_external_userid", 50, 1),
        IdentityType("wechat_openid", 40, 1),
        IdentityType("anonymous_id", 10, None),
    )
}


_rules_cache: dict[str, object] = {"loaded_at": 0.0, "types": IDENTITY_TYPES, "blocked": BLOCKED_VALUES}
RULES_TTL_SECONDS = 5.0


def rules_reload() -> None:
    """Reads the admins' overrides now (called after they change, and every few seconds anyway)."""
    from cdp.models import IdentityRule

    types = dict(IDENTITY_TYPES)
    blocked = set(BLOCKED_VALUES)
    for rule in IdentityRule.objects.all():
        if rule.type in types:
            types[rule.type] = IdentityType(
                rule.type, rule.priority, rule.max_per_customer, types[rule.type].sensitive
            )
            blocked |= {str(value).strip().lower() for value in rule.blocked_values}
    _rules_cache.update(loaded_at=time.monotonic(), types=types, blocked=frozenset(blocked))


def _current(key: str):
    if time.monotonic() - _rules_cache["loaded_at"] > RULES_TTL_SECONDS:
        try:
            rules_reload()
        except Exception:  # no database yet (migrations, checks): the defaults apply
            _rules_cache["loaded_at"] = time.monotonic()
    return _rules_cache[key]


def identity_type_of(identity_type: str) -> IdentityType:
    """``wechat_openid:<appid>`` is one type per app id, all with the rules of ``wechat_openid``."""
    return _current("types")[identity_type.split(":", 1)[0]]


def is_blocked(raw: str) -> bool:
    return raw.strip().lower() in _current("blocked")


@lru_cache(maxsize=65536)  # parsing is the costliest step of ingestion, and people come back
def normalise_phone(raw: str, region: str = "CN") -> str | None:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str | None:
    email = raw.strip().lower()
    return email if EMAIL.match(email) else None


def normalise_id_number(raw: str) -> str | None:
    number = re.sub(r"\s+", "", raw).upper()
    return number if ID_NUMBER.match(number) else None


def hash_sensitive(value: str) -> str:
    return "h:" + hmac.new(identity_hash_key(), value.encode(), hashlib.sha256).hexdigest()


def encrypt_sensitive(value: str) -> str:
    return pii_keyring().encrypt(value.encode()).decode()


def decrypt_sensitive(token: str) -> str:
    return pii_keyring().decrypt(token.encode()).decode()


HASHED = re.compile(r"^h:[0-9a-f]{64}$")


def _id_number_hashed(raw: str | int) -> str:
    text = str(raw).strip()
    if HASHED.match(text):
        return text
    return hash_sensitive(normalise_id_number(text) or text)


def id_numbers_hashed(value):
    """A copy of an event's properties or context with every ID number replaced by its keyed hash,
    the identity table's (so a stored event still matches its identity): a value under a key that
    names an ID number (``id_number``, ``身份证号``, an ``externalIds`` entry of type ``id_number``)
    and an 18-character ID number inside any text. Phones and emails stay: they identify customers
    unhashed, and are masked where people read them."""
    if isinstance(value, str):
        if len(value) < 18:  # shorter than an ID number: the common case costs no regex
            return value
        return ID_NUMBER_IN_TEXT.sub(lambda match: hash_sensitive(match.group().upper()), value)
    if isinstance(value, list):
        return [id_numbers_hashed(item) for item in value]
    if not isinstance(value, dict):
        return value
    hashed = {}
    for key, item in value.items():
        names_id_number = pii_kind(str(key)) == "id_number" or (
            key == "id" and isinstance(value.get("type"), str) and pii_kind(value["type"]) == "id_number"
        )
        if (
            names_id_number
            and isinstance(item, str | int)
            and not isinstance(item, bool)
            and str(item).strip()
        ):
            hashed[key] = _id_number_hashed(item)
        else:
            hashed[key] = id_numbers_hashed(item)
    return hashed


@dataclass(frozen=True)
class NormalisedIdentity:
    type: str
    value: str
    encrypted_value: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.type, self.value)


def normalise(identity_type: str, raw) -> NormalisedIdentity | None:
    """The stored form of one identifier, or None when it identifies no one."""
    if raw is None or isinstance(raw, (dict, list, bool)):
        return None
    raw = str(raw).strip()
    if is_blocked(raw) or len(raw) > 255:
        return None
    base_type = identity_type.split(":", 1)[0]
    if base_type not in IDENTITY_TYPES:
        return None
    if base_type == "phone":
        value = normalise_phone(raw)
    elif base_type == "email":
        value = normalise_email(raw)
    elif base_type == "id_number":
        number = normalise_id_number(raw)
        if number is None:
            return None
        return NormalisedIdentity(identity_type, hash_sensitive(number), encrypt_sensitive(number))
    else:
        value = raw
    if value is None or is_blocked(value):
        return None
    return NormalisedIdentity(identity_type, value)


# Where identifiers travel in Segment's spec: traits (identify) or context.traits (other calls).
TRAIT_IDENTIFIERS = {
    "phone": "phone",
    "mobile": "phone",
    "email": "email",
    "id_number": "id_number",
    "idNumber": "id_number",
    "wechat_unionid": "wechat_unionid",
    "unionid": "wechat_unionid",
    "unionId": "wechat_unionid",
    "wecom_external_userid": "wecom_external_userid",
    "external_userid": "wecom_external_userid",
}


# The anonymous id under which a client-side source's events with a userId and no anonymousId gather.
UNVERIFIED_USER_PREFIX = "unverified-user:"


def identities_of(message: dict, unverified: frozenset[str] = frozenset()) -> list[NormalisedIdentity]:
    """All identifiers one tracking message carries, normalised, without duplicates.

    ``unverified``: the identifier types its source may not merge by (``SourceTrust``); they are left
    out here (ingestion keeps them as ``unverified_<type>`` traits). A userId the source may not
    assert still groups that source's events under an anonymous id of its own, never the real one's
    customer."""
    found: dict[tuple[str, str], NormalisedIdentity] = {}

    def add(identity_type: str, raw) -> None:
        if raw is None or identity_type.split(":", 1)[0] in unverified:
            return
        identity = normalise(identity_type, raw)
        if identity is not None:
            found.setdefault(identity.key, identity)

    add("user_id", message.get("userId"))
    add("anonymous_id", message.get("anonymousId"))
    if "user_id" in unverified and message.get("anonymousId") is None:
        user_id = normalise("user_id", message.get("userId"))
        if user_id is not None:
            add("anonymous_id", f"{UNVERIFIED_USER_PREFIX}{user_id.value}")
    context = message.get("context") if isinstance(message.get("context"), dict) else {}
    for traits in (message.get("traits"), context.get("traits")):
        if not isinstance(traits, dict):
            continue
        for key, value in traits.items():
            if key in TRAIT_IDENTIFIERS:
                add(TRAIT_IDENTIFIERS[key], value)
        openid = traits.get("wechat_openid") or traits.get("openid")
        app = context.get("app") if isinstance(context.get("app"), dict) else {}
        appid = traits.get("wechat_appid") or traits.get("appid") or app.get("wechat_appid")
        # The type column holds "wechat_openid:" and the app id: WeChat app ids are 18 characters.
        if openid and isinstance(appid, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,26}", appid):
            add(f"wechat_openid:{appid}", openid)
    external_ids = context.get("externalIds")
    for external in external_ids if isinstance(external_ids, list) else []:
        kind = external.get("type") if isinstance(external, dict) else None
        if isinstance(kind, str) and kind in IDENTITY_TYPES:
            add(kind, external.get("id"))
    return list(found.values())
