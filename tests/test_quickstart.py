"""`make run`'s runner from nothing: embedded PostgreSQL and Redis, migrations, demo data, web, one
worker per group of queues and beat; Ctrl-C stops every process it started."""

import os
import signal
import subprocess
import sys

import psutil
import pytest

from cdp.celery import QUEUES
from cdp.quickstart import WORKERS
from tests.processes import ROOT, free_port, get, wait_until


@pytest.mark.services
def test_quickstart_serves_a_healthy_app_and_ctrl_c_leaves_nothing_behind(tmp_path):
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL"}
    }
    env.update(
        {"CDP_VAR_DIR": str(tmp_path / "var"), "CDP_PORT": str(port), "HEARTBEAT_INTERVAL_SECONDS": "1"}
    )
    output = open(tmp_path / "quickstart.log", "wb")  # noqa: SIM115
    runner = subprocess.Popen(
        [sys.executable, "-m", "cdp.quickstart"], cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
    )
    log = lambda: (tmp_path / "quickstart.log").read_text(errors="replace")  # noqa: E731
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: "The app is up" in log(), timeout=180, what="the quickstart to announce its URL")
        assert url in log()
        _status, body = wait_until(
            lambda: (result := get(f"{url}/healthz"))[0] == 200 and result,
            timeout=60,
            what="/healthz to be green",
        )
        assert b'"ok": true' in body
        assert get(f"{url}/login/")[0] == 200
        assert "admin" in log() and "demo-admin" in log()

        started = psutil.Process(runner.pid).children(recursive=True)
        postmaster = int((tmp_path / "var" / "pgdata" / "postmaster.pid").read_text().split()[0])
        command_lines = [" ".join(child.cmdline()) for child in started]
        for program in ("daphne", "celery -A cdp beat", "redis-server"):
            assert any(program in line for line in command_lines), program
        # One worker per group of queues, every queue taken by one of them.
        for name, queues, _children in WORKERS:
            assert any(
                "celery -A cdp worker" in line and f"-Q {','.join(queues)} " in line and f"{name}@" in line
                for line in command_lines
            ), name
        assert sorted(queue for _name, queues, _children in WORKERS for queue in queues) == sorted(QUEUES)
    finally:
        runner.send_signal(signal.SIGINT)
        runner.wait(timeout=60)
        output.close()
    survivors = [child for child in started if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]
    assert survivors == []
    assert not psutil.pid_exists(postmaster) or psutil.Process(postmaster).status() == psutil.STATUS_ZOMBIE
