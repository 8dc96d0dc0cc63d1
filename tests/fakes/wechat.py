"""WeChat's side of an Official Account push in safe mode, written from WeChat's documentation with
the ``cryptography`` library and hashlib, not with wechatpy (which the product uses):

- the message is ``16 random bytes + its length (4 bytes, network order) + the message + the app id``,
  padded PKCS#7 to a multiple of 32 bytes, encrypted AES-256-CBC with the EncodingAESKey decoded from
  base64 (43 characters and "=") as the key and its first 16 bytes as the IV, then base64-encoded;
- ``msg_signature`` is the SHA-1 hex of the token, timestamp, nonce and that text, sorted and joined;
- the body is ``<xml><ToUserName>..</ToUserName><Encrypt>..</Encrypt></xml>``, the rest is in the query.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import struct
import time

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# WeChat's published sample (its message encryption documentation): a text message "hello".
SAMPLE_TOKEN = "QDG6eK"
SAMPLE_AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
SAMPLE_APPID = "wx5823bf96d3bd56c7"
SAMPLE_QUERY = {
    "msg_signature": "477715d11cdb4164915debcba66cb864d751f3e6",
    "timestamp": "1409659813",
    "nonce": "1372623149",
    "encrypt_type": "aes",
}
SAMPLE_BODY = (
    b"<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA["
    b"RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3v"
    b"g3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+"
    b"kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6t"
    b"iWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9"
    b"p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==]]></Encrypt></xml>"
)

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def encrypted(message: bytes, *, aes_key: str = AES_KEY, appid: str) -> str:
    key = base64.b64decode(aes_key + "=")
    plain = os.urandom(16) + struct.pack(">I", len(message)) + message + appid.encode()
    padding = 32 - len(plain) % 32
    plain += bytes([padding]) * padding
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def msg_signature(token: str, timestamp: str, nonce: str, encrypted_text: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted_text])).encode()).hexdigest()  # noqa: S324 (WeChat's scheme)


def push(
    message: bytes,
    *,
    appid: str,
    token: str,
    aes_key: str = AES_KEY,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> tuple[dict[str, str], bytes]:
    """The query and body WeChat posts for ``message`` (the plain XML event)."""
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    nonce = nonce or str(secrets.randbelow(10**10))
    text = encrypted(message, aes_key=aes_key, appid=appid)
    body = (
        f"<xml><ToUserName><![CDATA[gh_sandbox0000]]></ToUserName><Encrypt><![CDATA[{text}]]></Encrypt></xml>"
    )
    query = {
        "timestamp": stamp,
        "nonce": nonce,
        "encrypt_type": "aes",
        "msg_signature": msg_signature(token, stamp, nonce, text),
    }
    return query, body.encode()


def template_job_finished(*, openid: str, msg_id: str, status: str, created: int | None = None) -> bytes:
    """The plain event WeChat encrypts when a template message's fate is known (its documented shape)."""
    created = created if created is not None else int(time.time())
    return (
        f"<xml><ToUserName><![CDATA[gh_sandbox0000]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
        f"</FromUserName><CreateTime>{created}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event>"
        f"<MsgID>{msg_id}</MsgID><Status><![CDATA[{status}]]></Status></xml>"
    ).encode()


def follower_event(*, openid: str, event: str, key: str = "", created: int | None = None) -> bytes:
    """A follow, unfollow or QR scan, as WeChat documents them."""
    created = created if created is not None else int(time.time())
    return (
        f"<xml><ToUserName><![CDATA[gh_sandbox0000]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
        f"</FromUserName><CreateTime>{created}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event><EventKey><![CDATA[{key}]]></EventKey>"
        "<Ticket><![CDATA[gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2tIV]]></Ticket></xml>"
    ).encode()
