"""Segments at scale: 1,000,000 customers and 10,000,000 events, rules through the product's compiler
beside hand-written SQL for the same question, in one run.

Builds ``cdp_bench_segments`` with generate_series (minutes, once; ``--reuse`` keeps it): customers
with traits (city, industry, vip level, a bucket 0-99), events over the last 90 days (page views,
product views with a category, orders with revenue), and the rollups the ingest path keeps (per
customer and event; per customer, event and day). Then measures (median of ``--repeat`` runs):

  - an attribute-only segment and a behavioural one ("at least 2 orders in 30 days and no visit in
    the last 7"), each as the compiler writes it and as hand-written SQL, with the ratio;
  - the preview the rule editor shows (count and a sample);
  - writing a membership change of about 400,000 customers (a new segment), with the deferred checks
    its commit runs (none since member rows carry no database foreign keys), then its timeline events;
  - the incremental refresh of 20 segments after 10,000 new events (only the touched customers),
    with the number of statements it took.

Every measurement runs in a transaction that is rolled back, so the database stays as built; a
``--reuse`` run starts with ``VACUUM ANALYZE`` to clear the rows earlier runs rolled back (the local
server runs without autovacuum, and a membership table full of dead rows misleads the planner).

    .venv/bin/python bench/segment_eval.py [--customers 1000000] [--events 10000000] [--reuse]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

import psycopg
from benchdb import database_fresh, database_migrate

ROOT = Path(__file__).resolve().parents[1]
DATABASE = "cdp_bench_segments"
SERVER = "postgres://postgres@127.0.0.1:5432"
CHUNK = 1_000_000


def build(customers: int, events: int, database: str = DATABASE) -> None:
    """Drops and recreates ``database``, then fills it (``bench/segment_freshness.py`` builds its own
    smaller one the same way)."""
    database_fresh(SERVER, database)
    started = time.perf_counter()
    with psycopg.connect(f"{SERVER}/{database}", autocommit=True) as db:
        db.execute(
            "INSERT INTO cdp_source (name, kind, write_key, enabled, created_at, event_count) "
            "VALUES ('bench', 'web', 'bench-key', true, now(), 0)"
        )
        db.execute(
            """
            INSERT INTO cdp_customer (id, name, traits, traits_updated_at, first_seen_at, last_seen_at,
                                      created_at, updated_at)
            SELECT i, '客户' || i,
                   jsonb_build_object(
                       'city', (ARRAY['深圳','杭州','上海','北京','成都'])[1 + i %% 5],
                       'industry', (ARRAY['智能家居','母婴','美妆','数码'])[1 + (i / 7) %% 4],
                       'vip', i %% 6,
                       'bucket', (i::bigint * 7919) %% 100,
                       'role', CASE WHEN i %% 3 = 0 THEN 'supplier' ELSE 'buyer' END),
                   '{}', now() - interval '90 days', now() - (i %% 9000) * interval '10 minutes', now(), now()
            FROM generate_series(1, %s) AS i
            """,
            [customers],
        )
        db.execute("SELECT setval(pg_get_serial_sequence('cdp_customer', 'id'), %s)", [customers])
        print(f"[build] {customers:,} customers in {time.perf_counter() - started:.0f}s", flush=True)
        source_id = db.execute("SELECT id FROM cdp_source").fetchone()[0]
        for first in range(0, events, CHUNK):
            count = min(CHUNK, events - first)
            # Busier customers get more events (i^2 skew); names by share; times over 90 days.
            db.execute(
                """
                INSERT INTO cdp_event (customer_id, origin_customer_id, source_id, kind, name, channel,
                                       timestamp, received_at, message_id, properties, context, amount)
                SELECT customer, customer, %s, 'track', name, 'web', moment, moment, 'm' || n,
                       CASE name
                           WHEN 'Product Viewed' THEN jsonb_build_object(
                               'category', (ARRAY['美妆','数码','母婴','家居'])[1 + n %% 4], 'price', n %% 500)
                           WHEN 'Order Completed' THEN jsonb_build_object('revenue', n %% 2000)
                           ELSE '{}'::jsonb END,
                       '{}'::jsonb,
                       CASE WHEN name = 'Order Completed' THEN n %% 2000 END
                FROM (
                    SELECT n,
                           1 + (floor(%s * power(random(), 2)))::bigint AS customer,
                           CASE WHEN r < 0.5 THEN 'page_viewed' WHEN r < 0.85 THEN 'Product Viewed'
                                WHEN r < 0.93 THEN 'Order Completed' ELSE 'Cart Viewed' END AS name,
                           now() - random() * interval '90 days' AS moment
                    FROM (SELECT n, random() AS r FROM generate_series(%s::bigint, %s::bigint) AS n) AS numbered
                ) AS generated
                """,
                [source_id, customers - 1, first + 1, first + count],
            )
            print(f"[build] {first + count:,} events, {time.perf_counter() - started:.0f}s", flush=True)
        # The rollups the ingest path would have kept.
        db.execute(
            """
            INSERT INTO cdp_customereventstats (customer_id, name, first_at, last_at, count, amount_sum)
            SELECT customer_id, name, min(timestamp), max(timestamp), count(*), coalesce(sum(amount), 0)
            FROM cdp_event GROUP BY customer_id, name
            """
        )
        db.execute(
            """
            INSERT INTO cdp_customereventdaily (customer_id, name, day, count)
            SELECT customer_id, name, (timestamp AT TIME ZONE 'Asia/Shanghai')::date, count(*)
            FROM cdp_event GROUP BY 1, 2, 3
            """
        )
        db.execute(
            """
            INSERT INTO cdp_channeleventdaily (day, channel, name, count)
            SELECT (timestamp AT TIME ZONE 'Asia/Shanghai')::date, channel, name, count(*)
            FROM cdp_event GROUP BY 1, 2, 3
            """
        )
        db.execute("VACUUM ANALYZE")
        print(f"[build] rollups and statistics, {time.perf_counter() - started:.0f}s in all", flush=True)


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent on anything but idle and I/O wait since boot (other sessions'
    work on this shared machine included)."""
    with open("/proc/stat") as handle:
        values = [int(value) for value in handle.readline().split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def timed(function, repeat: int) -> tuple[float, object]:
    spent, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = function()
        spent.append(time.perf_counter() - began)
    return statistics.median(spent), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reuse", action="store_true", help="keep the database built by an earlier run")
    args = parser.parse_args()
    if not args.reuse:
        build(args.customers, args.events)
    else:  # the tables of newer code, on the database an earlier run built
        database_migrate(SERVER, DATABASE)
        began = time.perf_counter()
        with psycopg.connect(f"{SERVER}/{DATABASE}", autocommit=True) as db:
            db.execute("VACUUM ANALYZE")
        print(f"[reuse] VACUUM ANALYZE {time.perf_counter() - began:.0f}s", flush=True)

    # How busy the machine is without us: the figures are wall-clock times on shared cores.
    busy, began = machine_busy_seconds(), time.perf_counter()
    time.sleep(2)
    print(
        f"[machine] busy {(machine_busy_seconds() - busy) / (time.perf_counter() - began):.2f} of"
        f" {os.cpu_count()} cores before the measurements",
        flush=True,
    )
    busy, run_began = machine_busy_seconds(), time.perf_counter()

    os.environ["DATABASE_URL"] = f"{SERVER}/{DATABASE}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection, transaction
    from django.utils import timezone

    from cdp.models import CustomerRole
    from segments.compiler import evaluation_settings, rule_customers
    from segments.models import MembershipChange
    from segments.refresh import customers_refresh
    from segments.rules import rule_parse
    from segments.services import membership_events_write, segment_preview, segment_save

    today = timezone.localdate()

    def compiled_count(rule_data):
        def run():
            with transaction.atomic():
                evaluation_settings()  # as the product's own evaluations do
                return rule_customers(rule_parse(rule_data), today=today).count()

        return run

    def hand_count(sql, params):
        def run():
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchone()[0]

        return run

    attribute = {
        "and": [{"trait": "city", "op": "eq", "value": "深圳"}, {"trait": "vip", "op": "gte", "value": 3}]
    }
    attribute_sql = (
        "SELECT count(*) FROM cdp_customer WHERE merged_into_id IS NULL"
        " AND traits->>'city' = '深圳' AND (traits->>'vip')::numeric >= 3"
    )
    behaviour = {
        "and": [
            {"event": "Order Completed", "count": {"op": "gte", "value": 2}, "within_days": 30},
            {"event": "page_viewed", "did": False, "within_days": 7},
        ]
    }
    behaviour_sql = """
        SELECT count(*) FROM (
            SELECT customer_id FROM cdp_customereventdaily
            WHERE name = 'Order Completed' AND day BETWEEN %s AND %s
            GROUP BY customer_id HAVING sum(count) >= 2
        ) AS orders
        JOIN cdp_customer AS c ON c.id = orders.customer_id AND c.merged_into_id IS NULL
        WHERE NOT EXISTS (SELECT 1 FROM cdp_customereventdaily AS d WHERE d.customer_id = orders.customer_id
                          AND d.name = 'page_viewed' AND d.day BETWEEN %s AND %s)
    """
    behaviour_params = [today - dt.timedelta(days=29), today, today - dt.timedelta(days=6), today]

    figures = {}
    for label, rule, sql, params in (
        ("attribute-only (city and vip level)", attribute, attribute_sql, []),
        ("behavioural (2+ orders in 30 days, no visit in 7)", behaviour, behaviour_sql, behaviour_params),
    ):
        compiled_s, compiled_n = timed(compiled_count(rule), args.repeat)
        hand_s, hand_n = timed(hand_count(sql, params), args.repeat)
        assert compiled_n == hand_n, (label, compiled_n, hand_n)
        figures[label] = (compiled_s, hand_s, compiled_n)
        print(
            f"{label:52} compiler {compiled_s * 1000:8.0f} ms   hand-written {hand_s * 1000:8.0f} ms"
            f"   ratio {compiled_s / hand_s:5.2f}   customers {compiled_n:,}",
            flush=True,
        )
    preview_s, preview = timed(lambda: segment_preview(rule_data=behaviour), args.repeat)
    print(
        f"{'preview while editing (count and 10 customers)':52} {preview_s * 1000:8.0f} ms   count {preview.count:,}"
    )

    forty_percent = {"trait": "bucket", "op": "lt", "value": 40}
    began = time.perf_counter()
    with transaction.atomic():
        segment = segment_save(key="bench-forty", name="40%", rule_data=forty_percent, actor=None)
        spent = time.perf_counter() - began
        print(
            f"{'membership change written (new segment)':52} {spent * 1000:8.0f} ms"
            f"   entered {segment.member_count:,} (evaluation and the diff, one transaction)"
        )
        # What its commit adds: the deferred constraint checks of the new member rows (none since member
        # rows carry no database foreign keys), run here so that the transaction can still be rolled back.
        began = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        checks = time.perf_counter() - began
        print(
            f"{'  its deferred checks at commit':52} {checks * 1000:8.0f} ms"
            f"   written and checked: {(spent + checks) * 1000:,.0f} ms"
        )
        change = MembershipChange.objects.get(segment=segment)
        began = time.perf_counter()
        written = membership_events_write(change_id=change.pk)
        spent = time.perf_counter() - began
        print(
            f"{'  then its timeline events (worker, 50,000 a commit)':52} {spent * 1000:8.0f} ms"
            f"   {written:,} segment_entered events with their rollups"
        )
        transaction.set_rollback(True)  # leave the database as built, for --reuse

    # Incremental refresh: 20 segments, then 10,000 new events, then only the touched customers.
    with transaction.atomic():
        CustomerRole.objects.get_or_create(key="supplier", defaults={"label": "供应商"})
        rules = _twenty_rules()
        for number, rule in enumerate(rules):
            segment_save(key=f"bench-{number}", name=f"bench {number}", rule_data=rule, actor=None)
        with connection.cursor() as cursor:
            cursor.execute(
                """
                CREATE TEMP TABLE new_events ON COMMIT DROP AS
                SELECT 1 + (floor(%s * power(random(), 2)))::bigint AS customer_id,
                       (ARRAY['Order Completed','page_viewed','Product Viewed'])[1 + (n %% 3)] AS name, now() AS moment
                FROM generate_series(1, 10000) AS n
                """,
                [args.customers - 1],
            )
            # As the ingest path would store them: events, then the rollups.
            cursor.execute(
                """
                INSERT INTO cdp_event (customer_id, origin_customer_id, source_id, kind, name, channel,
                                       timestamp, received_at, message_id, properties, context)
                SELECT customer_id, customer_id, NULL, 'track', name, 'web', moment, moment, 'new', '{}', '{}'
                FROM new_events
                """
            )
            cursor.execute(
                """
                INSERT INTO cdp_customereventstats (customer_id, name, first_at, last_at, count, amount_sum)
                SELECT customer_id, name, min(moment), max(moment), count(*), 0 FROM new_events GROUP BY 1, 2
                ON CONFLICT (customer_id, name) DO UPDATE SET last_at = EXCLUDED.last_at,
                    count = cdp_customereventstats.count + EXCLUDED.count
                """
            )
            cursor.execute(
                """
                INSERT INTO cdp_customereventdaily (customer_id, name, day, count)
                SELECT customer_id, name, (moment AT TIME ZONE 'Asia/Shanghai')::date, count(*)
                FROM new_events GROUP BY 1, 2, 3
                ON CONFLICT (customer_id, name, day) DO UPDATE
                SET count = cdp_customereventdaily.count + EXCLUDED.count
                """
            )
            cursor.execute("SELECT DISTINCT customer_id FROM new_events")
            touched = [row[0] for row in cursor.fetchall()]
        statements = []

        def counted(execute, sql, params, many, context):
            statements.append(sql)
            return execute(sql, params, many, context)

        def refresh():
            # Each run from the same state: undone before the next.
            savepoint = transaction.savepoint()
            statements.clear()
            with connection.execute_wrapper(counted):
                changes = customers_refresh(customer_ids=touched)
            transaction.savepoint_rollback(savepoint)
            return changes

        spent, changes = timed(refresh, args.repeat)
        moved = sum(diff.entered + diff.exited for diff in changes.values())
        print(
            f"{'incremental refresh, 20 segments, 10,000 new events':52} {spent * 1000:8.0f} ms"
            f"   {len(touched):,} customers evaluated, {moved:,} moved in {len(changes)} segments,"
            f" {len(statements)} statements"
        )
        transaction.set_rollback(True)
    print(
        f"[machine] busy {(machine_busy_seconds() - busy) / (time.perf_counter() - run_began):.2f} of"
        f" {os.cpu_count()} cores during the measurements (this run included)"
    )
    return 0


def _twenty_rules() -> list[dict]:
    """Segments a marketer keeps: attributes, behaviour, both, and one built on another."""
    cities = ["深圳", "杭州", "上海", "北京", "成都"]
    rules: list[dict] = []
    for number, city in enumerate(cities):
        rules.append(
            {"and": [{"trait": "city", "op": "eq", "value": city}, {"trait": "vip", "op": "gte", "value": 3}]}
        )
        rules.append(
            {
                "and": [
                    {"trait": "city", "op": "eq", "value": city},
                    {
                        "event": "Order Completed",
                        "count": {"op": "gte", "value": 2},
                        "within_days": 30 + number,
                    },
                ]
            }
        )
    for days in (7, 14, 30, 60, 90):
        rules.append(
            {
                "and": [
                    {"event": "Order Completed"},
                    {"event": "Order Completed", "did": False, "within_days": days},
                ]
            }
        )
    rules += [
        {
            "event": "Product Viewed",
            "where": [{"property": "category", "op": "eq", "value": "美妆"}],
            "within_days": 14,
        },
        {"not": {"event": "page_viewed", "within_days": 30}},
        {"event": "Order Completed", "first_time": {"op": "within_last_days", "value": 7}},
        {"role": "supplier"},
        {"or": [{"segment": "bench-0"}, {"segment": "bench-1"}]},
    ]
    return rules


if __name__ == "__main__":
    raise SystemExit(main())
