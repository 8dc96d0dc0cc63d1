"""How long `make run` takes from a fresh clone (cold) and the second time (warm).

Clones this checkout's HEAD into a temporary folder, runs `make run` there twice, and prints the
seconds until the app announced its URL and until /healthz was all green (beat ticked), then the
seconds Ctrl-C took to stop everything. The cold run downloads the Python and npm dependencies.

    .venv/bin/python bench/quickstart_startup.py [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def healthz_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def one_run(checkout: Path, label: str) -> dict[str, float]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL"}}
    env["CDP_PORT"] = str(port)
    log_path = checkout / f"run-{label}.log"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["make", "run"],
            cwd=checkout,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        announced = green = None
        url = f"http://127.0.0.1:{port}"
        deadline = started + 900
        while time.monotonic() < deadline and green is None:
            if process.poll() is not None:
                raise SystemExit(f"make run exited early; see {log_path}")
            if announced is None and "The app is up" in log_path.read_text(errors="replace"):
                announced = time.monotonic() - started
            if announced is not None and healthz_ok(url):
                green = time.monotonic() - started
            time.sleep(0.2)
        stopping = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        process.wait(timeout=60)
        stopped = time.monotonic() - stopping
    if green is None:
        raise SystemExit(f"/healthz never went green; see {log_path}")
    return {"announced": announced, "healthz_green": green, "stop": stopped}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary clone")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="quickstart-bench-"))
    checkout = folder / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(checkout)], check=True)
    try:
        cold = one_run(checkout, "cold")
        warm = one_run(checkout, "warm")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"{'run':<6} {'URL printed (s)':>16} {'/healthz green (s)':>19} {'Ctrl-C to all stopped (s)':>26}")
    for label, figures in (("cold", cold), ("warm", warm)):
        announced, green, stop = figures["announced"], figures["healthz_green"], figures["stop"]
        print(f"{label:<6} {announced:>16.1f} {green:>19.1f} {stop:>26.1f}")
    print(f"warm/cold ratio (URL printed): {warm['announced'] / cold['announced']:.3f}")


if __name__ == "__main__":
    main()
