"""The connector protocol: what a connector kind declares, how it sends and how it reads callbacks.

A kind is a class registered with ``@connector_kind``. It declares its channel (the consent and
identity it uses), its settings (a pydantic model; fields marked ``secret`` are encrypted at rest and
never shown again), and implements ``send`` (one message, one answer) and ``parse_callback`` (the
provider's inbound request, signature checked, turned into receipts). Errors a provider answers are
classified by raising one of the ``ProviderError`` subclasses; the dispatcher acts on the class.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.utils.translation import gettext_lazy as _
from pydantic import BaseModel, ValidationError


class Channel:
    """Channel kinds: what a message is (and which consent and identity it needs)."""

    WECHAT_TEMPLATE = "wechat_template"
    WECOM = "wecom"
    SMS = "sms"
    EMAIL = "email"
    CALL = "call"
    WEBHOOK = "webhook"

    LABELS: ClassVar[dict[str, Any]] = {
        WECHAT_TEMPLATE: _("WeChat template message"),
        WECOM: _("WeCom message"),
        SMS: _("SMS"),
        EMAIL: _("Email"),
        CALL: _("Call"),
        WEBHOOK: _("Webhook"),
    }
    # The consent channel a customer says yes or no to (``Subscribed`` / ``Unsubscribed`` events).
    CONSENT: ClassVar[dict[str, str | None]] = {
        WECHAT_TEMPLATE: "wechat",
        WECOM: "wecom",
        SMS: "sms",
        EMAIL: "email",
        CALL: "call",
        WEBHOOK: None,
    }


@dataclass(frozen=True)
class OutgoingMessage:
    """What a connector sends: the rendered content for one recipient."""

    id: int
    idempotency_key: str
    recipient: str
    content: dict
    customer_id: int | None = None


@dataclass(frozen=True)
class SendResult:
    """The provider accepted the message: its id for it and its raw answer (kept on the message)."""

    provider_message_id: str
    raw: str


class ProviderError(Exception):
    """A provider refused or failed; ``raw`` is its answer as received, kept on the message."""

    def __init__(self, reason: str, *, raw: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.raw = raw


class PermanentError(ProviderError):
    """Sending this message again would fail again (bad recipient, rejected content, garbage answer)."""


class RetryableError(ProviderError):
    """A transient failure (timeout, 5xx, throttling): try again later with backoff."""


class DeferError(ProviderError):
    """The account's quota is spent until a given time: send then, not before."""

    def __init__(self, reason: str, *, until: dt.datetime, raw: str = ""):
        super().__init__(reason, raw=raw)
        self.until = until


class PauseAccountError(ProviderError):
    """The account's configuration is wrong (credentials, balance): stop every send until an admin acts."""


class CallbackRejected(Exception):
    """An inbound callback whose signature or shape is wrong; answered 4xx and stored as rejected."""


@dataclass(frozen=True)
class Receipt:
    """One outcome a provider reports about a message it accepted."""

    provider_message_id: str
    status: str  # one of RECEIPT_STATUSES
    occurred_at: dt.datetime | None = None
    detail: str = ""
    url: str = ""
    data: dict = field(default_factory=dict)
    # Our own id for the message, when the provider echoes it (Aliyun's OutId): it finds a message
    # whose provider id we never recorded (one left ``unknown``).
    idempotency_key: str = ""
    # This receipt's own part of a callback that reports on several messages, kept in its message's
    # log: the whole body would show each message's reader the other recipients of the batch.
    raw: str = ""


RECEIPT_STATUSES = ("delivered", "failed", "opened", "clicked", "replied", "unsubscribed")


@dataclass(frozen=True)
class InboundRequest:
    """The parts of an HTTP request a callback parser may read."""

    body: bytes
    headers: dict[str, str]
    query: dict[str, str]
    content_type: str = ""


@dataclass(frozen=True)
class InboundEvent:
    """Something the customer did that a provider pushes to us (followed the Official Account,
    scanned a parametric QR code): recorded on the customer the identities name, created if new."""

    name: str
    message_id: str  # the provider's own key for the push, so a repeated push is stored once
    # The identifying traits, as the tracking API reads them (``wechat_openid`` with ``wechat_appid``).
    traits: dict[str, str]
    properties: dict = field(default_factory=dict)
    occurred_at: dt.datetime | None = None


@dataclass(frozen=True)
class CallbackAnswer:
    """What we answer the provider (each expects its own acknowledgement), the receipts in it and
    the customers' own actions it reports."""

    receipts: list[Receipt]
    body: bytes = b"ok"
    content_type: str = "text/plain"
    events: list[InboundEvent] = field(default_factory=list)


def secret(**kwargs) -> Any:
    """A settings field kept encrypted and never shown again (pydantic ``Field`` with a marker)."""
    from pydantic import Field

    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra["secret"] = True
    return Field(json_schema_extra=extra, **kwargs)


class ConnectorKind:
    """Base class of every connector kind. Subclasses set the class attributes and implement two methods.

    An instance is built per account with its settings (secrets decrypted) and the account id.
    """

    key: ClassVar[str]
    channel: ClassVar[str]
    label: ClassVar[Any]
    settings_model: ClassVar[type[BaseModel]]
    sandbox: ClassVar[bool] = False
    # Providers that answer slowly are worth calling from several threads at once.
    max_parallel: ClassVar[int] = 32

    def __init__(self, *, account_id: int, settings: BaseModel):
        self.account_id = account_id
        self.settings = settings

    @classmethod
    def secret_fields(cls) -> list[str]:
        return [
            name
            for name, info in cls.settings_model.model_fields.items()
            if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("secret")
        ]

    @classmethod
    def settings_validate(cls, values: dict) -> tuple[BaseModel | None, dict[str, str]]:
        """The settings, or the problems by field name (a human sentence each)."""
        try:
            return cls.settings_model.model_validate(values), {}
        except ValidationError as error:
            problems: dict[str, str] = {}
            for item in error.errors():
                name = ".".join(str(part) for part in item["loc"]) or "__all__"
                problems.setdefault(name, item["msg"])
            return None, problems

    def send(self, message: OutgoingMessage) -> SendResult:
        raise NotImplementedError

    def sends_recorded(self) -> None:
        """Called by the dispatcher once the answers of a batch of ``send`` calls are committed."""

    def parse_callback(self, request: InboundRequest) -> CallbackAnswer:
        raise CallbackRejected("this kind takes no callbacks")
