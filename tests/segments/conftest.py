"""Every segment test runs on a clock it sets: the customers' events are placed "N days ago" and the
rules then count days back from today, so a test that read the machine's clock would see a
different "today" when the suite crossed midnight (or a month's end) between the two readings."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
import time_machine

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")

# An ordinary Tuesday morning in the company's zone, far from any day's edge.
ORDINARY_MORNING = dt.datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI)

# Moments where the company's day and the UTC day part, or a month or a leap day ends; a test that
# takes one with @pytest.mark.parametrize("clock", EDGE_MOMENTS, indirect=True) runs at each.
EDGE_MOMENTS = [
    pytest.param(dt.datetime(2027, 3, 10, 0, 30, tzinfo=SHANGHAI), id="0030-shanghai-day-before-in-utc"),
    pytest.param(dt.datetime(2027, 1, 31, 23, 50, tzinfo=SHANGHAI), id="last-minutes-of-a-month"),
    pytest.param(dt.datetime(2028, 2, 29, 0, 30, tzinfo=SHANGHAI), id="29-february-28-in-utc"),
    pytest.param(dt.datetime(2028, 3, 1, 0, 30, tzinfo=SHANGHAI), id="1-march-after-a-leap-day"),
]


@pytest.fixture(autouse=True)
def clock(request):
    """The clock starts at a fixed moment and runs on from there (tick=True: the ingestion path and
    the database wait on real durations)."""
    with time_machine.travel(getattr(request, "param", ORDINARY_MORNING), tick=True) as traveller:
        yield traveller


@pytest.fixture
def source(server_source):
    """Rules are about customers the company knows by their user id, phone or email: their events come
    from the company's own server, which may name them (a web key may not: cdp's source trust)."""
    return server_source
