"""A web request's database connections go back to the pool however the request ends: when daphne
kills it after its client left, and when its answer is an error page Django renders off the request's
thread. Before, each kept one connection checked out for good, and after ``DATABASE_POOL_SIZE`` of them
every page and API call failed with 503 until the server restarted."""

import asyncio
import contextlib
import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.db import connections
from django.http import HttpResponse, HttpResponseForbidden
from django.urls import path

from cdp.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@login_not_required
def slow_page(request):
    get_user_model().objects.exists()
    time.sleep(0.8)
    return HttpResponse("done")


@login_not_required
def refused_page(request):
    raise PermissionDenied


def refusal(request, exception):
    # Like the product's 403 page: rendering it reads the database (the user, the navigation).
    get_user_model().objects.exists()
    return HttpResponseForbidden("refused")


urlpatterns = [path("slow/", slow_page), path("refused/", refused_page)]
handler403 = refusal


@pytest.fixture
def these_pages(settings):
    settings.ROOT_URLCONF = __name__
    settings.ALLOWED_HOSTS = ["testserver"]


def checked_out() -> int:
    stats = connections["default"].pool.get_stats()
    return stats["pool_size"] - stats["pool_available"]


def http_scope(page: str) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": page,
        "raw_path": page.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


async def request(page: str, *, client_leaves_after: float | None = None) -> list[dict]:
    sent, asked = [], False

    async def receive():
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(client_leaves_after if client_leaves_after is not None else 3600)
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await application(http_scope(page), receive, send)
    return sent


def wait_for_checked_out(expected: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while checked_out() != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return checked_out()


def test_a_request_daphne_kills_after_its_client_left_gives_its_connection_back(these_pages):
    get_user_model().objects.exists()  # the pool exists, with this test's own connection out
    before = checked_out()

    async def killed_like_daphne():
        # The client leaves at once; past application_close_timeout daphne cancels the application,
        # and again at every check (each second; here each 0.1 s) until it is done.
        task = asyncio.create_task(request("/slow/", client_leaves_after=0.05))
        await asyncio.sleep(0.2)
        while not task.done():
            task.cancel()
            await asyncio.sleep(0.1)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    for _ in range(3):
        asyncio.run(killed_like_daphne())
    assert wait_for_checked_out(before) == before


def test_error_pages_rendered_off_the_request_thread_give_their_connections_back(these_pages):
    get_user_model().objects.exists()
    before = checked_out()

    async def refused_at_once() -> list[int]:
        answers = await asyncio.gather(*(request("/refused/") for _ in range(4)))
        return [sent[0]["status"] for sent in answers]

    assert asyncio.run(refused_at_once()) == [403, 403, 403, 403]
    assert wait_for_checked_out(before) == before
