"""The database a benchmark builds for itself on the local PostgreSQL server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]


def database_env(server: str, name: str) -> dict:
    """The environment for the product's own commands against that database."""
    return {**os.environ, "DATABASE_URL": f"{server}/{name}", "DJANGO_SETTINGS_MODULE": "cdp.settings"}


def database_migrate(server: str, name: str) -> dict:
    """Brings the database to the current schema; returns the environment for it."""
    env = database_env(server, name)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    return env


def database_fresh(server: str, name: str) -> dict:
    """Drops and recreates the database, then migrates it; returns the environment for it."""
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    return database_migrate(server, name)
