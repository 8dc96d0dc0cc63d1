"""The demo's rules over the demo customers: every lifecycle page has true things to show."""

from django.db.models import Q

from cdp.demo import demo_load
from segments.demo import demo_rules_load
from segments.models import CustomerScore, CustomerStage, CustomerTag, LifecycleStage, Segment
from segments.stages import stage_board
from tests.cdp.test_demo_customers import loaded  # noqa: F401 (fixture)


def test_the_demo_rules_place_customers_in_stages_segments_and_give_scores(loaded):  # noqa: F811
    demo_load()
    assert demo_rules_load()
    assert not demo_rules_load()  # once
    board = stage_board(visible=Q())
    assert [column["stage"].key for column in board] == ["prospect", "nurturing", "customer", "loyal"]
    assert sum(column["count"] for column in board) == CustomerStage.objects.count() > 0
    assert {column["stage"].key for column in board if column["count"]} >= {"prospect", "customer"}
    assert CustomerScore.objects.filter(points__gt=0).exists()
    assert CustomerTag.objects.filter(tag__key="online").exists()
    assert Segment.objects.get(key="smart-home-suppliers").member_count > 0
    assert LifecycleStage.objects.count() == 4
