"""The Messages and Channels pages with 1,000,000 messages in the outbox, through the full Django stack.

Builds ``cdp_bench_messages`` (dropped and recreated; ``--reuse`` keeps an earlier one): 100,000
customers, 6 sandbox accounts, ``--messages`` messages (1,000,000) over 30 days with a realistic
mix of statuses (0.1% unknown), each with two life-log lines, via ``generate_series``. Then times
(``--repeat`` requests each, p50 and p95) the pages an admin opens: the Messages list unfiltered,
filtered by a rare status (unknown), a common one (delivered), an account, a customer (by phone),
one message's page, and the Channels page with its per-account counts.

    .venv/bin/python bench/messages_page.py [--messages 1000000] [--repeat 20] [--reuse]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import psycopg
from benchdb import database_fresh, database_migrate

ROOT = Path(__file__).resolve().parents[1]
DATABASE = "cdp_bench_messages"
SERVER = "postgres://postgres@127.0.0.1:5432"


def build(messages: int) -> None:
    env = database_fresh(SERVER, DATABASE)
    began = time.perf_counter()
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as db:
        db.execute(
            """
            INSERT INTO cdp_customer (name, traits, traits_updated_at, created_at, updated_at, last_seen_at)
            SELECT 'customer ' || n, '{}', '{}', now(), now(), now() - (n % 30) * interval '1 day'
            FROM generate_series(1, 100000) n
            """
        )
        db.execute(
            """
            INSERT INTO cdp_identity (customer_id, type, value, encrypted_value, first_seen_at)
            SELECT id, 'phone', '+86138' || lpad(id::text, 8, '0'), '', now() FROM cdp_customer
            """
        )
        for index, (kind, channel) in enumerate(
            [("sandbox_sms", "sms"), ("sandbox_email", "email"), ("sandbox_wechat_template", "wechat_template"),
             ("sandbox_wecom", "wecom"), ("sandbox_call", "call"), ("sandbox_webhook", "webhook")]
        ):  # fmt: skip
            db.execute(
                "INSERT INTO connectors_channelaccount (name, kind, channel, settings, secrets_encrypted,"
                " rate_per_second, status, paused_reason, created_at) VALUES (%s, %s, %s, %s, '', 100, 'active',"
                " '', now())",
                [f"account {index}", kind, channel, '{"latency_ms": 0}'],
            )
        db.execute(
            """
            INSERT INTO connectors_message (idempotency_key, account_id, channel, customer_id, recipient, content,
                origin, node_id, status, reason, due_at, claim, attempts, provider_message_id, provider_answer,
                created_at, sent_at, delivered_at, failed_at)
            SELECT 'bench-' || n, a.id, a.channel, 1 + (n::bigint * 7919) %% 100000, '+8613800000000',
                   '{"text": "您好，双十一采购节开始了"}', 'journey', 'send-1',
                   CASE WHEN n %% 1000 = 0 THEN 'unknown' WHEN n %% 50 = 0 THEN 'failed'
                        WHEN n %% 10 = 0 THEN 'sent' ELSE 'delivered' END,
                   '', t, '', 1, 'p-' || n, '{"Code":"OK"}', t,
                   t + interval '1 second', CASE WHEN n %% 10 > 0 THEN t + interval '5 seconds' END,
                   CASE WHEN n %% 50 = 0 THEN t + interval '5 seconds' END
            FROM generate_series(1, %s) n
            CROSS JOIN LATERAL (SELECT now() - (n::float / %s) * interval '30 days' AS t) times
            JOIN connectors_channelaccount a ON a.name = 'account ' || (n %% 6)
            """,
            [messages, messages],
        )
        db.execute(
            """
            INSERT INTO connectors_messagelog (message_id, at, step, status, detail, raw)
            SELECT id, created_at, 'queued', 'queued', 'queued', '' FROM connectors_message
            UNION ALL
            SELECT id, sent_at, 'attempt', 'sent', 'attempt 1: accepted', provider_answer FROM connectors_message
            """
        )
        db.execute("ANALYZE")
    print(f"built {messages:,} messages in {time.perf_counter() - began:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    if args.reuse:
        database_migrate(SERVER, DATABASE)
    else:
        build(args.messages)

    os.environ.update({"DATABASE_URL": f"{SERVER}/{DATABASE}", "DJANGO_SETTINGS_MODULE": "cdp.settings"})
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth.models import Group, Permission
    from django.contrib.contenttypes.models import ContentType
    from django.test import Client
    from django.test.utils import setup_test_environment

    from cdp.access import sync_role_groups
    from connectors.models import ChannelAccount, Message

    setup_test_environment()
    sync_role_groups(Group, Permission, ContentType)
    from django.contrib.auth import get_user_model

    admin, _created = get_user_model().objects.get_or_create(username="bench-admin")
    admin.groups.set([Group.objects.get(name="Admin")])
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(admin)
    account = ChannelAccount.objects.order_by("pk").first()
    message = Message.objects.order_by("-pk").first()
    pages = [
        ("Messages, newest first", "/messages/"),
        ("Messages, status unknown (0.1%)", "/messages/?status=unknown"),
        ("Messages, status delivered", "/messages/?status=delivered"),
        ("Messages, one account", f"/messages/?account={account.pk}"),
        ("Messages, one customer by phone", "/messages/?customer=%2B8613800004242"),
        ("Messages, older page (htmx, before an id)", f"/messages/?before={message.pk - 500_000}"),
        ("One message with its life", f"/messages/{message.pk}/"),
        ("Channels, with per-account counts", "/channels/"),
    ]
    print(f"{'page':<45} {'p50 ms':>8} {'p95 ms':>8}")
    for label, url in pages:
        spent = []
        for _ in range(args.repeat):
            began = time.perf_counter()
            response = client.get(url)
            spent.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        spent.sort()
        p95 = spent[min(len(spent) - 1, int(len(spent) * 0.95))]
        print(f"{label:<45} {statistics.median(spent):>8.1f} {p95:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
