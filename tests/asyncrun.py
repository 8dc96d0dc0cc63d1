"""Running a coroutine from a synchronous test, whatever ran before it in the same process."""

from __future__ import annotations

import asyncio
import concurrent.futures


def run(coroutine):
    """``asyncio.run``, on a thread of its own when this thread already runs a loop (Playwright's, once
    a browser test has run in this worker)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(asyncio.run, coroutine).result()
