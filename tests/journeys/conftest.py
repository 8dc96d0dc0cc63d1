"""Journey fixtures: customers with addresses, sandbox accounts and templates, published journeys,
and events recorded on customers' timelines the way the product records them."""

from __future__ import annotations

import itertools

import pytest
from django.db import transaction
from django.utils import timezone

from cdp.ingest import system_events_record
from connectors.services import template_save
from journeys.models import Journey
from journeys.services import journey_publish, journey_save
from segments.tags import tag_save
from tests.connectors.conftest import (  # noqa: F401  (fixtures shared with the messaging tests)
    in_english,
    make_account,
    make_customer,
    realtime_on_redis,
    sandbox_connections_closed,
)

SMS_BODY = {
    "template_code": "SMS_1",
    "params": {"name": "{{ customer.name }}"},
    "text": "{{ customer.name }}您好",
}
WECHAT_BODY = {"template_id": "TPL_1", "fields": {"first": "{{ customer.name }}，您的购物车还在"}}
_events = itertools.count()


@pytest.fixture
def sms_template(db):
    return template_save(
        key="cart-sms",
        name="购物车提醒短信",
        channel="sms",
        body=SMS_BODY,
        known_traits=set(),
        allow_unknown=True,
    )


@pytest.fixture
def wechat_template(db):
    return template_save(
        key="cart-wechat",
        name="购物车提醒模板消息",
        channel="wechat_template",
        body=WECHAT_BODY,
        known_traits=set(),
        allow_unknown=True,
    )


@pytest.fixture
def tags(db):
    return {key: tag_save(key=key, name=key, actor=None) for key in ("bought", "lost", "lead")}


def track(customer, name: str, properties: dict | None = None, moment=None) -> None:
    """An event on the customer's timeline, committed (what ingestion writes, with its rollups)."""
    with transaction.atomic():
        system_events_record(
            rows=[(customer.pk, name)],
            kind="track",
            properties=properties or {},
            moment=moment or timezone.now(),
            message_prefix=f"test-{name}-{next(_events)}",
        )


def published(graph: dict, name: str = "购物车挽回", **settings) -> Journey:
    journey = journey_save(name=name, actor=None, draft_graph=graph, **settings)
    journey_publish(journey=journey, actor=None)
    journey.refresh_from_db()
    return journey


def node(node_id: str, node_type: str, **config) -> dict:
    return {"id": node_id, "type": node_type, "config": config, "position": {"x": 0, "y": 0}}


def edge(source: str, target: str, handle: str | None = None) -> dict:
    return {
        "id": f"{source}-{handle or 'default'}-{target}",
        "source": source,
        "sourceHandle": handle,
        "target": target,
    }
