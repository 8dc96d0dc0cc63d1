"""Search and profile speed at scale: 1,000,000 customers, one of them with 10,000 events.

Builds its own database (cdp_bench_lookup) with generate_series (minutes, once; --reuse skips it),
then measures, in one run:
  - search by phone through the same selector the customer list uses, beside a hand-written
    index lookup of the same phone (ratio printed);
  - the customer list page and the profile page of the 10,000-event customer, rendered through
    Django's full stack (middleware, templates) with a signed-in sales user, p50/p95.

    .venv/bin/python bench/customer_lookup.py [--customers 1000000] [--events 10000] [--reuse]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from benchdb import database_fresh

ROOT = Path(__file__).resolve().parents[1]
DATABASE = "cdp_bench_lookup"
SERVER = "postgres://postgres@127.0.0.1:5432"


def build(customers: int, events: int) -> None:
    env = database_fresh(SERVER, DATABASE)
    subprocess.run(
        [sys.executable, "manage.py", "demo_data", "--skip-customers"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    started = time.perf_counter()
    with psycopg.connect(f"{SERVER}/{DATABASE}", autocommit=True) as db:
        db.execute(
            "INSERT INTO cdp_source (name, kind, write_key, enabled, created_at, event_count) "
            "VALUES ('bench', 'web', 'bench-key', true, now(), 0)"
        )
        db.execute(
            """
            INSERT INTO cdp_customer (id, name, traits, traits_updated_at, first_seen_at, last_seen_at, created_at, updated_at)
            SELECT i, '客户' || i, jsonb_build_object('city', (ARRAY['深圳','杭州','上海','北京'])[1 + i %% 4],
                                                     'role', CASE WHEN i %% 3 = 0 THEN 'supplier' ELSE 'buyer' END),
                   '{}', now() - interval '90 days', now() - (i %% 9000) * interval '10 minutes', now(), now()
            FROM generate_series(1, %s) AS i
            """,
            [customers],
        )
        db.execute("SELECT setval(pg_get_serial_sequence('cdp_customer', 'id'), %s)", [customers])
        db.execute(
            """
            INSERT INTO cdp_identity (customer_id, type, value, encrypted_value, first_seen_at)
            SELECT i, 'phone', '+86138' || lpad(i::text, 8, '0'), '', now() FROM generate_series(1, %s) AS i
            UNION ALL
            SELECT i, 'email', 'c' || i || '@example.com', '', now() FROM generate_series(1, %s) AS i
            """,
            [customers, customers],
        )
        db.execute(
            """
            INSERT INTO cdp_event (customer_id, origin_customer_id, source_id, kind, name, channel, timestamp,
                                   received_at, message_id, properties, context)
            SELECT 1, 1, (SELECT id FROM cdp_source LIMIT 1), 'track',
                   (ARRAY['Product Viewed','Product Added','Order Completed','page_viewed'])[1 + i %% 4], 'web',
                   now() - i * interval '13 minutes', now(), 'bench-' || i,
                   jsonb_build_object('sku', 'SKU-' || (i %% 300), 'price', i %% 900), '{}'
            FROM generate_series(1, %s) AS i
            """,
            [events],
        )
        db.execute(
            """
            INSERT INTO cdp_customereventstats (customer_id, name, first_at, last_at, count, amount_sum)
            SELECT customer_id, name, min(timestamp), max(timestamp), count(*), 0 FROM cdp_event GROUP BY 1, 2
            """
        )
        db.execute("VACUUM ANALYZE")
    print(
        f"built {customers:,} customers, {2 * customers:,} identities, {events:,} events "
        f"in {time.perf_counter() - started:.0f}s"
    )


def timed(function, rounds: int) -> list[float]:
    samples = []
    for _round in range(rounds):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def describe(label: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"{label:<46} p50 {statistics.median(ordered):7.2f} ms   p95 {p95:7.2f} ms"


def measure(customers: int) -> None:
    os.environ["DATABASE_URL"] = f"{SERVER}/{DATABASE}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from cdp.customers import customer_search

    phones = [f"138{index:08d}" for index in range(1, customers, max(1, customers // 200))]
    cycle = iter(phones * 10)

    def selector_search():
        assert list(customer_search(query=next(cycle))[:50])

    def raw_lookup():
        phone = "+86" + next(cycle)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT c.id FROM cdp_identity i JOIN cdp_customer c ON c.id = i.customer_id "
                "WHERE i.type = 'phone' AND i.value = %s AND c.merged_into_id IS NULL",
                [phone],
            )
            assert cursor.fetchall()

    client = Client()
    client.force_login(get_user_model().objects.get(username="sales"))

    def list_page():
        assert client.get("/customers/", {"q": next(cycle)}).status_code == 200

    def profile_page():
        assert client.get("/customers/1/").status_code == 200

    for warm in (selector_search, raw_lookup, list_page, profile_page):
        timed(warm, 5)
    search = timed(selector_search, 200)
    raw = timed(raw_lookup, 200)
    print(describe("search by phone (selector, 1 query)", search))
    print(describe("same lookup, hand-written SQL", raw))
    print(
        f"{'ratio selector / hand-written (p50)':<46} {statistics.median(search) / statistics.median(raw):.2f}"
    )
    print(describe("customer list page, search by phone", timed(list_page, 100)))
    print(describe("profile page of a 10,000-event customer", timed(profile_page, 60)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--reuse", action="store_true", help="measure the database an earlier run built")
    args = parser.parse_args()
    if not args.reuse:
        build(args.customers, args.events)
    measure(args.customers)


if __name__ == "__main__":
    main()
