"""Reads for pages: what rules say about one customer (stage, score and its ledger, segments)."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from cdp.models import Customer
from segments.models import CustomerScore, CustomerStage, ScoreEntry, Segment

LEDGER_ROWS = 20


@dataclass(frozen=True)
class RuleFacts:
    stage: CustomerStage | None
    score: int
    ledger: list[ScoreEntry]
    segments: list[Segment]
    now: object


def customer_rule_facts(*, customer: Customer) -> RuleFacts:
    """The profile's stage, score (with its latest ledger entries) and segments."""
    stage = CustomerStage.objects.filter(customer=customer).select_related("stage").first()
    score = CustomerScore.objects.filter(customer=customer).values_list("points", flat=True).first() or 0
    ledger = list(
        ScoreEntry.objects.filter(customer=customer)
        .select_related("adjusted_by")
        .order_by("-happened_at", "-pk")[:LEDGER_ROWS]
    )
    segments = list(Segment.objects.filter(members__customer=customer).order_by("name"))
    return RuleFacts(stage, score, ledger, segments, timezone.now())
