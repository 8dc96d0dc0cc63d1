"""Runs a command (``make test``) with the machine's clock moved: Python, Node, Chromium and a
PostgreSQL server of its own all read the moved clock, so the suite meets "now" as a user would at
that moment, database included.

    python -m tests.clock "2028-02-29 23:59:00" -- make test            # UTC
    python -m tests.clock "2027-01-31 23:59:00 Asia/Shanghai" -- make test

The clock is moved with libfaketime as a fixed offset from the real clock, so that every process
(pytest's workers, the servers the tests start, PostgreSQL) reads the same moved time and it keeps
running; the monotonic clock stays the real one. The library is the build the ``libfaketime`` Python
package ships (requirements-dev.txt): Debian's 0.9.10 fails Python's ``time.sleep`` with EINVAL when
the monotonic clock is left alone, and hangs timed thread waits when it is not.
``FAKETIME_FORCE_MONOTONIC_FIX=0`` keeps Chromium from hanging at start.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import zoneinfo
from pathlib import Path


def moment_parse(text: str) -> dt.datetime:
    """``YYYY-MM-DD HH:MM[:SS]`` in UTC, or followed by a zone name or an offset (``+08:00``)."""
    words = text.split()
    zone: dt.tzinfo = dt.UTC
    if len(words) == 3:
        if words[2][0] in "+-":
            zone = dt.datetime.fromisoformat(f"2000-01-01T00:00{words[2]}").tzinfo
        else:
            zone = zoneinfo.ZoneInfo(words[2])
        words = words[:2]
    moment = dt.datetime.fromisoformat(" ".join(words))
    return moment.replace(tzinfo=moment.tzinfo or zone)


def faketime_library() -> str:
    import libfaketime

    return str(Path(libfaketime.__file__).parent / "vendor" / "libfaketime" / "src" / "libfaketime.so.1")


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        sys.exit('usage: python -m tests.clock "YYYY-MM-DD HH:MM:SS [zone]" -- command ...')
    moment = moment_parse(argv[0])
    offset = (moment - dt.datetime.now(dt.UTC)).total_seconds()
    library = faketime_library()
    var_dir = tempfile.mkdtemp(prefix="cdp-clock-")
    os.chmod(var_dir, 0o755)  # noqa: S103 (run as root, the server runs as a user of its own)
    # Set before the server starts, so PostgreSQL (started by pg_ctl from here) runs on it too.
    os.environ.update(
        LD_PRELOAD=" ".join(filter(None, [library, os.environ.get("LD_PRELOAD")])),
        FAKETIME=f"{offset:+.3f}",
        FAKETIME_DONT_FAKE_MONOTONIC="1",
        FAKETIME_FORCE_MONOTONIC_FIX="0",
        CDP_VAR_DIR=var_dir,
    )
    from cdp import localdb  # reads CDP_VAR_DIR: the embedded server under the temporary directory

    try:
        # Stopped when this process ends, its data directory removed below.
        os.environ["DATABASE_URL"] = localdb.embedded_database_url(stop_at_exit=True)
        print(
            f"Clock moved to {moment.isoformat()} (UTC {moment.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S})",
            flush=True,
        )
        return subprocess.run(argv[2:]).returncode
    finally:
        localdb.embedded_server(stop_at_exit=True).cleanup()
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
