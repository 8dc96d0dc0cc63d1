"""The one way personal data reaches a person without ``view_pii``.

Phones, emails and ID numbers are recognised two ways: by the key they sit under (in English and
Chinese spellings: ``phone``, ``contact_phone``, ``手机号``, ``邮箱``, ``身份证号``, ...) and by their
shape anywhere in text (a mainland mobile, an E.164 number, an email address, an 18-character ID
number), so a phone inside a free-text note is masked as well as one under ``phone``. Every output
that can carry traits, properties, message contents, provider answers or receipts goes through
``redact`` (or ``redact_text`` for a plain string): pages, the API, exports, test runs, the rule
vocabulary, websocket messages.
"""

from __future__ import annotations

import re

HIDDEN = "••••"

# Keys are compared without case, spaces, "-" and "_": "Contact-Phone" is "contactphone".
_PHONE_WORDS = ("phone", "mobile", "tel", "telephone", "cellphone", "手机", "电话", "联系方式", "座机")
_EMAIL_WORDS = ("email", "mail", "邮箱", "邮件", "电子邮件")
_ID_WORDS = ("idnumber", "idcard", "idno", "identitycard", "身份证", "证件号")

MOBILE = re.compile(r"(?<![0-9])(?:\+?86[- ]?)?1[3-9][0-9](?:[- ]?[0-9]{4}){2}(?![0-9])")
E164 = re.compile(r"(?<![0-9+])\+[1-9][0-9]{7,14}(?![0-9])")
ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])[1-9][0-9]{5}(?:18|19|20)[0-9]{9}[0-9Xx](?![0-9A-Za-z])")
EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def _plain(key: str) -> str:
    return re.sub(r"[\s_\-.]", "", key).lower()


def pii_kind(key: str) -> str | None:
    """``phone``, ``email`` or ``id_number`` when a key names personal data, else None."""
    plain = _plain(key)
    if any(word in plain for word in _ID_WORDS):
        return "id_number"
    if any(word in plain for word in _EMAIL_WORDS):
        return "email"
    if plain in {"tel", "mobile"} or any(
        word in plain for word in _PHONE_WORDS if len(word) > 3 or not word.isascii()
    ):
        return "phone"
    return None


def mask_phone(phone: str) -> str:
    """+8613800138000 -> +86 138****8000: enough to recognise, not enough to call."""
    digits = re.sub(r"[^0-9+]", "", phone)
    if digits.removeprefix("+").startswith("86") and len(digits.removeprefix("+")) == 13:
        return f"+86 {digits[-11:-8]}****{digits[-4:]}"
    if len(digits) == 11 and digits.startswith("1"):
        return f"{digits[:3]}****{digits[-4:]}"
    return digits[:-6] + "****" + digits[-2:] if len(digits) > 8 else "****"


def mask_email(email: str) -> str:
    """zhao.min@example.com -> z****@example.com"""
    local, _at, domain = email.partition("@")
    return f"{local[:1]}****@{domain}" if domain else "****"


def redact_text(text: str) -> str:
    """A string with every phone, email and ID number in it masked."""
    if not text:
        return text
    text = ID_NUMBER.sub(HIDDEN, text)
    text = EMAIL.sub(lambda match: mask_email(match.group()), text)
    text = MOBILE.sub(lambda match: mask_phone(match.group()), text)
    return E164.sub(lambda match: mask_phone(match.group()), text)


def _masked_under(kind: str, value):
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        return redact(value, show_pii=False)
    text = str(value)
    if kind == "id_number":
        return HIDDEN
    if kind == "email":
        return mask_email(text) if "@" in text else redact_text(text)
    return mask_phone(text) if sum(char.isdigit() for char in text) >= 7 else redact_text(text)


def redact(value, *, show_pii: bool):
    """A copy of traits, properties, contents or answers with personal data masked, for people
    without ``view_pii``; the value itself for those with it."""
    if show_pii:
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list | tuple):
        return [redact(item, show_pii=False) for item in value]
    if not isinstance(value, dict):
        return value
    # context.externalIds entries: {"type": "phone", "id": "..."}
    if isinstance(value.get("type"), str) and "id" in value and pii_kind(value["type"]):
        return {**value, "id": _masked_under(pii_kind(value["type"]), value["id"])}
    return {key: redact_under(str(key), item, show_pii=False) for key, item in value.items()}


def redact_under(key: str, value, *, show_pii: bool):
    """A value as shown under ``key`` (a trait's name, an identity's type): masked whole when the
    key names personal data, else searched for it like any text."""
    if show_pii:
        return value
    kind = pii_kind(key)
    return _masked_under(kind, value) if kind else redact(value, show_pii=False)


def redact_fields(rows, *fields: str, show_pii: bool) -> list:
    """Rows about to be shown (model instances or dicts) with these fields redacted in memory; the
    rows are display copies and are never saved."""
    rows = list(rows)
    if show_pii:
        return rows
    for row in rows:
        for name in fields:
            if isinstance(row, dict):
                if name in row:
                    row[name] = redact_under(name, row[name], show_pii=False)
            elif hasattr(row, name):
                setattr(row, name, redact_under(name, getattr(row, name), show_pii=False))
    return rows
