"""``make run``: one foreground command that serves the app with its worker and beat.

Starts the embedded PostgreSQL when ``DATABASE_URL`` is not set and the embedded Redis (the broker,
cache and realtime layer) when ``CELERY_BROKER_URL`` is not set, migrates, loads the demo data, then
runs daphne, one Celery worker per group of queues and Celery beat under one process manager.
Ctrl-C stops all of them and the embedded servers.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from honcho.manager import Manager

BASE_DIR = Path(__file__).resolve().parent.parent

# One worker per group of queues, so that none waits behind another's work: a burst of tracked
# events or a segment refresh never delays a due journey step or a send (decision record 0015).
# (name, queues, worker children)
WORKERS = (
    ("ingest", ("ingest",), 2),
    ("engine", ("engine", "matching"), 2),
    ("dispatch", ("dispatch",), 2),
    ("background", ("default", "segments"), 2),
    ("sandbox", ("sandbox",), 2),
)
BIN = Path(sys.executable).parent


def _prepare_environment() -> dict[str, str]:
    from cdp import localdb

    env = dict(os.environ, DJANGO_SETTINGS_MODULE="cdp.settings", PYTHONUNBUFFERED="1")
    if not env.get("DATABASE_URL"):
        print("Starting the embedded PostgreSQL (data in var/pgdata)...", flush=True)
        # This process owns the server: it stops when the quickstart exits.
        env["DATABASE_URL"] = localdb.embedded_database_url(stop_at_exit=True)
    if not env.get("CELERY_BROKER_URL"):
        from cdp import localredis

        print("Starting the embedded Redis (data in var/redis)...", flush=True)
        localredis.server_start(stop_at_exit=True)
        env["CELERY_BROKER_URL"] = localredis.broker_url()
        env.setdefault("REDIS_URL", localredis.client_url())
    os.environ.update(env)
    return env


def _migrate_and_load_demo() -> None:
    import django
    from django.core.management import call_command
    from django.db import connections

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    call_command("demo_data")
    connections.close_all()


def _announce_when_up(url: str, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):  # noqa: S310 (our own http URL)
                pass
        except urllib.error.HTTPError:
            pass  # it answers; a 503 only means beat has not ticked yet
        except OSError:
            time.sleep(0.3)
            continue
        print(
            f"\n  The app is up: {url}  (log in as admin / demo-admin; Ctrl-C stops everything)\n", flush=True
        )
        return


def main() -> int:
    host = os.environ.get("CDP_HOST", "127.0.0.1")
    port = os.environ.get("CDP_PORT", "8000")
    # Links sent to people and the sandbox providers' receipts go to the address served here.
    os.environ.setdefault("SITE_URL", f"http://{host}:{port}")
    env = _prepare_environment()
    _migrate_and_load_demo()

    manager = Manager()
    manager.add_process(
        "web", f"{BIN}/daphne -b {host} -p {port} cdp.asgi:application", env=env, cwd=BASE_DIR
    )
    for name, queues, children in WORKERS:
        manager.add_process(
            f"worker-{name}",
            f"{BIN}/celery -A cdp worker --loglevel INFO --concurrency {children} -Q {','.join(queues)} "
            f"--hostname {name}@%h --without-gossip --without-mingle",
            env=env,
            cwd=BASE_DIR,
        )
    manager.add_process("beat", f"{BIN}/celery -A cdp beat --loglevel INFO", env=env, cwd=BASE_DIR)

    stop = threading.Event()
    threading.Thread(target=_announce_when_up, args=(f"http://{host}:{port}", stop), daemon=True).start()
    try:
        manager.loop()
    finally:
        stop.set()
    return manager.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
