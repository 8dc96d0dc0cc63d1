"""One registry of connector kinds; each kind lives in its own package under ``connectors.kinds``."""

from __future__ import annotations

import importlib
from functools import cache

from connectors.protocol import ConnectorKind

KIND_PACKAGES = (
    "connectors.kinds.sandbox_wechat_template",
    "connectors.kinds.sandbox_wecom",
    "connectors.kinds.sandbox_sms",
    "connectors.kinds.sandbox_email",
    "connectors.kinds.sandbox_call",
    "connectors.kinds.sandbox_webhook",
    "connectors.kinds.webhook",
)

_KINDS: dict[str, type[ConnectorKind]] = {}


def connector_kind(cls: type[ConnectorKind]) -> type[ConnectorKind]:
    """Registers a kind under its ``key`` (a class decorator)."""
    if cls.key in _KINDS and _KINDS[cls.key] is not cls:
        raise ValueError(f"connector kind {cls.key!r} is registered twice")
    _KINDS[cls.key] = cls
    return cls


@cache
def _load() -> dict[str, type[ConnectorKind]]:
    for package in KIND_PACKAGES:
        importlib.import_module(package)
    return _KINDS


def kinds() -> dict[str, type[ConnectorKind]]:
    return dict(_load())


def kind_get(key: str) -> type[ConnectorKind]:
    try:
        return _load()[key]
    except KeyError:
        raise LookupError(f"unknown connector kind {key!r}") from None
