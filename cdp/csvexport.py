"""CSV files people open in a spreadsheet: every text cell that a spreadsheet would run as a formula
(``=HYPERLINK(...)``, ``@SUM(...)``, ``+cmd|...``) is kept as text by a leading apostrophe. Plain
numbers (a phone ``+8613800138000``, ``-5``) cannot run anything and are written as they are."""

from __future__ import annotations

import csv
import re

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9][0-9 .]*")


def spreadsheet_safe(value):
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


class SafeWriter:
    """``csv.writer`` whose every row goes through ``spreadsheet_safe``."""

    def __init__(self, buffer, **options):
        self._writer = csv.writer(buffer, **options)

    def writerow(self, row) -> None:
        self._writer.writerow([spreadsheet_safe(cell) for cell in row])
