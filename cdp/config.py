"""Settings from environment variables, with every problem reported at once.

The quickstart needs no variable at all; production mode (``DJANGO_ENV=production``) requires the
ones that have no safe default and refuses to start half-configured.
"""

from __future__ import annotations

import os
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}
# URLs that name a Unix socket by its path (redis-py's and kombu's spellings).
SOCKET_SCHEMES = {"unix", "redis+socket"}


class ConfigurationError(Exception):
    """Raised with one line per bad or missing variable."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(
            f"The configuration is not usable ({len(problems)} problem(s)); "
            f"see docs/configuration.md:\n{lines}"
        )


@dataclass
class Env:
    """Reads typed values from an environment mapping, collecting problems instead of failing fast."""

    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    problems: list[str] = field(default_factory=list)

    def _raw(self, name: str) -> str | None:
        value = self.environ.get(name)
        return None if value is None else value.strip()

    def _parsed(self, name: str, default: Any, required: bool, parse: Callable[[str], Any]) -> Any:
        raw = self._raw(name)
        if raw is None or raw == "":
            if required:
                self.problems.append(f"{name} is required but not set.")
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            self.problems.append(f"{name}={raw!r} is not valid: {exc}")
            return default

    def text(self, name: str, default: str = "", *, required: bool = False) -> str:
        return self._parsed(name, default, required, lambda raw: raw)

    def flag(self, name: str, default: bool) -> bool:
        def parse(raw: str) -> bool:
            word = raw.lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            raise ValueError("expected one of true/false, yes/no, on/off, 1/0")

        return self._parsed(name, default, False, parse)

    def number(self, name: str, default: int, *, minimum: int | None = None) -> int:
        def parse(raw: str) -> int:
            try:
                number = int(raw)
            except ValueError:
                raise ValueError("expected a whole number") from None
            if minimum is not None and number < minimum:
                raise ValueError(f"must be at least {minimum}")
            return number

        return self._parsed(name, default, False, parse)

    def items(self, name: str, default: list[str], *, required: bool = False) -> list[str]:
        def parse(raw: str) -> list[str]:
            items = [item.strip() for item in raw.split(",") if item.strip()]
            if not items:
                raise ValueError("expected a comma-separated list")
            return items

        return self._parsed(name, default, required, parse)

    def url(self, name: str, default: str = "", *, schemes: tuple[str, ...], required: bool = False) -> str:
        def parse(raw: str) -> str:
            parsed = urlparse(raw)
            if parsed.scheme not in schemes:
                raise ValueError(f"the scheme must be one of {', '.join(schemes)}")
            if parsed.scheme in SOCKET_SCHEMES:
                if not parsed.path:
                    raise ValueError("the socket's path is missing")
            elif not parsed.netloc:
                raise ValueError("a host (or a percent-encoded socket directory) is missing")
            return raw

        return self._parsed(name, default, required, parse)

    def time_zone(self, name: str, default: str) -> str:
        def parse(raw: str) -> str:
            try:
                zoneinfo.ZoneInfo(raw)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError("not a known IANA time zone such as Asia/Shanghai") from None
            return raw

        return self._parsed(name, default, False, parse)

    def secret_key(self, name: str, default: str, *, required: bool) -> str:
        def parse(raw: str) -> str:
            if required and (len(raw) < 50 or len(set(raw)) < 5):
                raise ValueError("use at least 50 random characters")
            return raw

        return self._parsed(name, default, required, parse)

    def raise_if_problems(self) -> None:
        if self.problems:
            raise ConfigurationError(self.problems)
