"""Running a coroutine from a test, whatever already runs in the test's thread."""

from __future__ import annotations

import asyncio
import threading


def run_coroutine(coroutine):
    """``asyncio.run``, in a thread of its own when an event loop already runs in this one (Playwright's
    sync API keeps one running for the rest of a worker's session once a browser test has started)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = asyncio.run(coroutine)
        except BaseException as error:  # re-raised in the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
