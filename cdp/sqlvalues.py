"""Many values as one query parameter. psycopg adapts a Python list element by element, which on
the ingest and segment paths (thousands of rows a statement) costs more than the statement; one
text that PostgreSQL parses in C does not."""

from __future__ import annotations

from cdp import json_codec


def json_rows(names: str, rows) -> str:
    """Rows for ``json_to_recordset(%s::json) AS x(<names with types>)`` (times, dates and decimals
    as text)."""
    keys = names.split()
    return json_codec.dumps_text([dict(zip(keys, row, strict=True)) for row in rows])


def id_array(ids) -> str:
    """Ids as one array literal, for ``= ANY(%s::bigint[])``, sorted (an array literal passes as is)."""
    return ids if isinstance(ids, str) else "{" + ",".join(str(int(value)) for value in sorted(ids)) + "}"
