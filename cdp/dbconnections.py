"""Every database connection a web request takes goes back to the pool, whatever becomes of the request.

Under ASGI, Django gives a request's connections back when it sends ``request_finished``, and only in
the thread that ran the view. Two paths never get there, and each left a connection checked out of
the process's pool for good; after ``DATABASE_POOL_SIZE`` of them every request waited 30 s for a
connection and failed with 503, until the server was restarted (docs/PERFORMANCE.md):

- **The client leaves, the view goes on.** daphne kills an application instance whose client
  disconnected and that did not finish within ``application_close_timeout`` (10 s), before Django
  sends ``request_finished``; the view's thread runs to its end with nobody closing its connection.
  A provider's callback with hundreds of receipts, posted by a client that waits 10 s, did this.
- **Error pages off the request's thread.** Django turns an exception (a 403 from the access check,
  a 404, a 500) into a response in the event loop's default executor, a pool of long-lived threads
  where no request ever finishes; rendering the page opens a connection there that stays open. The
  tracking API's calls run in the same threads.

``ConnectionsReturnedMiddleware`` returns the connections in the request's own thread as its chain
ends, however it ends; ``executor_install`` gives the event loop a default executor that returns a
thread's connections after each job.
"""

from __future__ import annotations

import asyncio
import weakref
from concurrent.futures import ThreadPoolExecutor

from django.core.handlers.asgi import ASGIRequest
from django.db import connections


def connections_return() -> None:
    """Gives this thread's connections back to the pool (closes them without one), except one in a
    transaction block: that belongs to whoever opened the block, e.g. a test's own transaction."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()


class ConnectionsReturnedMiddleware:
    """First in ``MIDDLEWARE``: the request's connections go back as the chain returns or raises, in the
    thread that took them, even when the server has stopped waiting for the request."""

    sync_capable, async_capable = True, False

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            return self.get_response(request)
        finally:
            # WSGI (and Django's test client) closes them itself when the response is done.
            if isinstance(request, ASGIRequest):
                connections_return()


class ConnectionsReturningExecutor(ThreadPoolExecutor):
    """A thread pool whose threads keep no database connection between jobs."""

    def submit(self, fn, /, *args, **kwargs):
        return super().submit(_then_return_connections, fn, *args, **kwargs)


def _then_return_connections(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    finally:
        connections_return()


_installed_on: weakref.WeakSet = weakref.WeakSet()


def executor_install() -> None:
    """Makes a ``ConnectionsReturningExecutor`` the running loop's default executor, once per loop."""
    loop = asyncio.get_running_loop()
    if loop not in _installed_on:
        _installed_on.add(loop)
        loop.set_default_executor(ConnectionsReturningExecutor(thread_name_prefix="asyncio"))
