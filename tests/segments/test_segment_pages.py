"""The segment pages marketers use: the list, the rule builder's form with its mistakes shown where
they are, a segment's page (rule in words, size history, latest changes, members), the CSV export
with masked contacts, static segments made from an uploaded list, and the builder's vocabulary."""

import csv
import io
import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Q
from django.urls import reverse

from cdp.models import CustomerRole, Event
from segments import lists
from segments.builder import COMPARISON_LABELS, COMPARISON_OPS, LEAF_KINDS, builder_config
from segments.models import MembershipChange, Segment, SegmentMember, Tag
from segments.rules import LEAF_KEYS
from segments.services import membership_events_pending, segment_save
from tests.segments.test_rule_agreement import store

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
LAPSED = {
    "and": [{"event": "Order Completed"}, {"event": "Order Completed", "did": False, "within_days": 30}]
}


def person(name, phone, email, days_ago, city="深圳", category="美妆"):
    return {
        "traits": {"name": name, "phone": phone, "email": email, "city": city},
        "role": "buyer",
        "events": [("Order Completed", days_ago, 12, {"revenue": 99, "category": category})],
        "tags": set(),
        "segments": set(),
        "consent": None,
    }


@pytest.fixture
def buyers(source):
    """赵敏 ordered 3 days ago, 钱多多 40 and 孙悟空 50 days ago."""
    return store(
        source,
        [
            person("赵敏", "13800138000", "zhao.min@example.com", 3),
            person("钱多多", "13900139000", "qian@example.com", 40, city="上海"),
            person("孙悟空", "13700137000", "sun@example.com", 50, category="数码"),
        ],
    )


@pytest.fixture
def marketer(client, user_in_role):
    client.force_login(user_in_role("Marketer"))
    return client


def text(response) -> str:
    return response.content.decode()


def builder_config_of(response) -> dict:
    match = re.search(
        r'<script id="builder-config" type="application/json">(.*?)</script>', text(response), re.S
    )
    return json.loads(match.group(1))


def test_the_list_shows_each_segment_or_the_empty_state(marketer, user_in_role, buyers, client_factory):
    Segment.objects.filter(key="vip").delete()
    page = text(marketer.get(reverse("segments"), **EN))
    assert "No segments yet" in page
    assert "New segment" in page

    segment_save(key="lapsed", name="30 天未下单", rule_data=LAPSED, actor=None)
    Segment.objects.create(key="fair", name="展会名单", kind=Segment.Kind.STATIC)
    page = text(marketer.get(reverse("segments"), **EN))
    assert "No segments yet" not in page
    row = re.search(r'<tr data-segment="lapsed">(.*?)</tr>', page, re.S).group(1)
    assert "30 天未下单" in row and "Dynamic" in row and ">2<" in row
    assert reverse("segment", args=[Segment.objects.get(key="lapsed").pk]) in row
    fair = re.search(r'<tr data-segment="fair">(.*?)</tr>', page, re.S).group(1)
    assert "Static" in fair and "never" in fair

    analyst = client_factory()
    analyst.force_login(user_in_role("Analyst"))
    page = text(analyst.get(reverse("segments"), **EN))
    assert "30 天未下单" in page
    assert "New segment" not in page and "New static segment" not in page


def test_a_marketer_saves_a_rule_from_the_builder_and_lands_on_its_page(marketer, buyers):
    page = marketer.get(reverse("segment_new"), **EN)
    assert page.status_code == 200
    assert builder_config_of(page)["previewUrl"] == reverse("api_segment_preview")

    response = marketer.post(
        reverse("segment_new"),
        {"key": "lapsed", "name": "30 天未下单", "description": "复购提醒", "rule": json.dumps(LAPSED)},
        **EN,
    )
    segment = Segment.objects.get(key="lapsed")
    assert response.status_code == 302
    assert response["Location"] == reverse("segment", args=[segment.pk])
    page = text(marketer.get(response["Location"], **EN))
    assert "Segment “30 天未下单” saved: 2 customers." in page
    assert "复购提醒" in page
    assert '<span class="stat__value" id="member-count">2</span>' in page
    # The rule, in words.
    assert "all of these" in page
    assert "did “Order Completed”" not in page  # names are shown as they are, not quoted
    assert "did Order Completed" in page
    assert "did not do Order Completed in the last 30 days" in page
    # The members, with their phones masked for marketers.
    assert "钱多多" in page and "孙悟空" in page and "赵敏" not in page
    assert "+86 139****9000" in page and "13900139000" not in page


def test_mistakes_come_back_beside_what_they_are_about_and_nothing_typed_is_lost(marketer, buyers):
    segment_save(key="lapsed", name="30 天未下单", rule_data=LAPSED, actor=None)
    rule = {"and": [{"event": "Order Complete"}, {"event": "Order Completed", "within_days": 0}]}
    response = marketer.post(
        reverse("segment_new"),
        {"key": "Bad Key", "name": "我的分群", "description": "说明文字", "rule": json.dumps(rule)},
        **EN,
    )
    assert response.status_code == 400
    page = text(response)
    assert "Use lower-case letters, digits, - and _" in page
    assert 'value="我的分群"' in page and "说明文字" in page and 'value="Bad Key"' in page
    # The rule as typed goes back into the builder, with each problem at its condition's path.
    hidden = re.search(r'<input type="hidden" name="rule" id="rule-input" value="([^"]*)"', page).group(1)
    assert json.loads(hidden.replace("&quot;", '"')) == rule
    problems = {problem["path"]: problem["message"] for problem in builder_config_of(response)["problems"]}
    assert problems == {
        "$.and[0].event": "no event is called “Order Complete”; did you mean “Order Completed”?",
        "$.and[1].within_days": "Input should be greater than or equal to 1",
    }
    assert not Segment.objects.filter(name="我的分群").exists()

    # Names are checked against the data, with the closest real ones.
    rule = {"and": [{"event": "Order Complete"}, {"trait": "city", "op": "eq", "value": "深圳"}]}
    response = marketer.post(
        reverse("segment_new"), {"key": "mine", "name": "我的分群", "rule": json.dumps(rule)}, **EN
    )
    assert response.status_code == 400
    (problem,) = builder_config_of(response)["problems"]
    assert problem["path"] == "$.and[0].event"
    assert "did you mean “Order Completed”" in problem["message"]

    # A key that is taken would silently change the other segment: refused beside the key.
    response = marketer.post(
        reverse("segment_new"), {"key": "lapsed", "name": "另一个", "rule": json.dumps(LAPSED)}, **EN
    )
    assert response.status_code == 400
    assert "A segment with this key exists already" in text(response)
    assert Segment.objects.get(key="lapsed").name == "30 天未下单"


def test_editing_keeps_the_key_and_changes_the_rule(marketer, buyers):
    segment = segment_save(key="lapsed", name="30 天未下单", rule_data=LAPSED, actor=None)
    page = marketer.get(reverse("segment_edit", args=[segment.pk]), **EN)
    assert (
        json.loads(re.search(r'id="rule-input" value="([^"]*)"', text(page)).group(1).replace("&quot;", '"'))
        == LAPSED
    )

    narrowed = {"and": [*LAPSED["and"], {"event": "Order Completed", "within_days": 45}]}
    response = marketer.post(
        reverse("segment_edit", args=[segment.pk]),
        {"key": "ignored", "name": "30–45 天未下单", "rule": json.dumps(narrowed)},
        **EN,
    )
    assert response.status_code == 302
    segment.refresh_from_db()
    assert (segment.key, segment.name, segment.member_count) == ("lapsed", "30–45 天未下单", 1)
    assert not Segment.objects.filter(key="ignored").exists()


def test_a_segment_page_shows_its_size_history_and_latest_changes(marketer, buyers):
    segment = segment_save(key="lapsed", name="30 天未下单", rule_data=LAPSED, actor=None)
    narrowed = {"and": [*LAPSED["and"], {"event": "Order Completed", "within_days": 45}]}
    segment_save(key="lapsed", name="30 天未下单", rule_data=narrowed, actor=None)
    page = text(marketer.get(reverse("segment", args=[segment.pk]), **EN))

    history = json.loads(
        re.search(r'id="size-history-data" type="application/json">(.*?)</script>', page).group(1)
    )
    assert len(history["points"]) == 1  # two changes today: the day's last size
    assert history["points"][0][1] == 1
    assert "echarts.min.js" in page
    changes = re.search(r'<ul class="changes" id="membership-changes">(.*?)</ul>', page, re.S).group(1)
    assert changes.index("−1") < changes.index("+2")  # the latest first
    assert "孙悟空" in changes  # who left, by name


def test_members_come_a_page_at_a_time(marketer, buyers, monkeypatch):
    monkeypatch.setattr(lists, "MEMBERS_PAGE", 2)
    segment = segment_save(key="everyone", name="全部", rule_data={"event": "Order Completed"}, actor=None)
    page = text(marketer.get(reverse("segment", args=[segment.pk]), **EN))
    rows = re.search(r'<tbody id="member-rows">(.*?)</tbody>', page, re.S).group(1)
    assert "孙悟空" in rows and "钱多多" in rows and "赵敏" not in rows  # the newest customers first
    more = f"{reverse('segment_members', args=[segment.pk])}?page=2"
    assert "Show more members" in rows and more in rows
    rest = text(marketer.get(more, HTTP_HX_REQUEST="true", **EN))
    assert "赵敏" in rest and "Show more members" not in rest


def test_refresh_now_is_for_managers(marketer, client_factory, user_in_role, buyers):
    segment = segment_save(key="lapsed", name="30 天未下单", rule_data=LAPSED, actor=None)
    SegmentMember.objects.filter(segment=segment, customer=buyers[1]).delete()
    response = marketer.post(reverse("segment_refresh", args=[segment.pk]), **EN)
    assert response.status_code == 302
    assert "Refreshed: 1 entered, 0 left." in text(marketer.get(response["Location"], **EN))

    analyst = client_factory()
    analyst.force_login(user_in_role("Analyst"))
    page = text(analyst.get(reverse("segment", args=[segment.pk]), **EN))
    assert "Export CSV" in page and "Refresh now" not in page and "Edit the rule" not in page
    for name in ("segment_refresh", "segment_upload"):
        assert analyst.post(reverse(name, args=[segment.pk])).status_code == 403
    assert analyst.get(reverse("segment_edit", args=[segment.pk])).status_code == 403
    assert analyst.get(reverse("segment_new")).status_code == 403
    assert analyst.post(reverse("segment_static_create")).status_code == 403


def _rows(response) -> list[dict]:
    assert response.streaming
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(body.removeprefix("\ufeff"))))


def test_the_csv_export_masks_contacts_for_whoever_may_not_see_them(
    marketer, client_factory, user_in_role, buyers
):
    segment = segment_save(key="lapsed", name="30 天未下单", rule_data=LAPSED, actor=None)
    response = marketer.get(reverse("segment_export", args=[segment.pk]))
    assert response["Content-Disposition"].startswith('attachment; filename="segment-lapsed-')
    rows = _rows(response)
    assert [row["customer_id"] for row in rows] == [str(buyers[1].pk), str(buyers[2].pk)]
    assert rows[0]["name"] == "钱多多"
    # Masked, it is no number: a spreadsheet would take "+86 ..." for a formula, so it is kept as text.
    assert rows[0]["phone"] == "'+86 139****9000"
    assert rows[0]["email"] == "q****@example.com"
    assert rows[0]["entered_at"]

    sales = client_factory()
    sales.force_login(user_in_role("Sales"))  # Sales may see full phone numbers
    rows = _rows(sales.get(reverse("segment_export", args=[segment.pk])))
    assert (rows[0]["phone"], rows[0]["email"]) == ("+8613900139000", "qian@example.com")


def test_the_export_keeps_names_that_look_like_formulas_as_text(marketer, buyers):
    buyers[1].name = "=HYPERLINK(1)"
    buyers[1].save()
    segment = segment_save(key="lapsed", name="30 天未下单", rule_data=LAPSED, actor=None)
    rows = _rows(marketer.get(reverse("segment_export", args=[segment.pk])))
    assert rows[0]["name"] == "'=HYPERLINK(1)"


def test_the_export_reads_the_members_a_chunk_at_a_time(buyers):
    segment = segment_save(key="everyone", name="全部", rule_data={"event": "Order Completed"}, actor=None)
    chunks = list(lists.members_csv(segment=segment, show_pii=True, visible=Q(), chunk=2))
    assert len(chunks) == 3  # the header, then two chunks of at most two rows
    assert sum(chunk.count("\n") for chunk in chunks[1:]) == 3


def test_a_static_segment_is_made_from_a_list_with_a_report_of_rows_that_match_no_one(marketer, buyers):
    upload = SimpleUploadedFile(
        "fair.csv",
        b"phone\n138 0013 8000\n13900139000\n13600000000\nnot a phone\n\n",
        content_type="text/csv",
    )
    response = marketer.post(
        reverse("segment_static_create"),
        {"key": "fair", "name": "展会名单", "description": "2026 展会", "file": upload},
        **EN,
    )
    assert response.status_code == 302
    segment = Segment.objects.get(key="fair")
    assert segment.kind == Segment.Kind.STATIC
    assert set(segment.members.values_list("customer_id", flat=True)) == {buyers[0].pk, buyers[1].pk}
    page = text(marketer.get(response["Location"], **EN))
    assert "4 rows: 2 matched 2 customers; 2 entered, 0 left." in page
    unmatched = re.search(
        r'<table class="table table--compact" id="unmatched-rows">(.*?)</table>', page, re.S
    )
    assert "2 rows named no customer" in page
    assert "13600000000" in unmatched.group(1) and "no customer has this phone" in unmatched.group(1)
    assert "not a phone" in unmatched.group(1) and "not a valid phone number" in unmatched.group(1)
    assert "Upload a new list" in page and "Refresh now" not in page
    # The report is shown once.
    assert "named no customer" not in text(marketer.get(response["Location"], **EN))

    # A new list replaces the members as a diff, with the size history and the timeline events.
    upload = SimpleUploadedFile(
        "fair.csv",
        f"customer_id,name\n{buyers[1].pk},钱多多\n#{buyers[2].pk},\n".encode(),
        content_type="text/csv",
    )
    response = marketer.post(
        reverse("segment_upload", args=[segment.pk]), {"file": upload, "mode": "replace"}, **EN
    )
    assert response.status_code == 302
    assert set(segment.members.values_list("customer_id", flat=True)) == {buyers[1].pk, buyers[2].pk}
    latest = MembershipChange.objects.filter(segment=segment).latest("pk")
    assert (latest.entered, latest.exited, latest.member_count) == ([buyers[2].pk], [buyers[0].pk], 2)
    membership_events_pending()
    assert Event.objects.filter(name="segment_entered", properties__segment="fair").count() == 3
    assert list(
        Event.objects.filter(name="segment_exited", properties__segment="fair").values_list(
            "customer_id", flat=True
        )
    ) == [buyers[0].pk]
    assert "List uploaded: 1 entered, 1 left." in text(marketer.get(response["Location"], **EN))

    # Added to, not replaced; an export reads back as an upload.
    export = b"".join(marketer.get(reverse("segment_export", args=[segment.pk])).streaming_content)
    other = Segment.objects.create(key="copy", name="副本", kind=Segment.Kind.STATIC)
    marketer.post(
        reverse("segment_upload", args=[other.pk]),
        {"file": SimpleUploadedFile("copy.csv", export, content_type="text/csv"), "mode": "add"},
    )
    assert set(other.members.values_list("customer_id", flat=True)) == {buyers[1].pk, buyers[2].pk}


def test_segments_built_on_a_static_one_follow_its_uploads(
    marketer, buyers, monkeypatch, django_capture_on_commit_callbacks
):
    from cdp.celery import app as celery_app

    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)  # the worker's part, in this process
    fair = Segment.objects.create(key="fair", name="展会名单", kind=Segment.Kind.STATIC)
    ordered = segment_save(
        key="fair-buyers", name="展会买家", rule_data={"and": [{"segment": "fair"}, LAPSED]}, actor=None
    )
    assert ordered.member_count == 0
    upload = SimpleUploadedFile("fair.csv", b"13800138000\n13900139000\n", content_type="text/csv")
    with django_capture_on_commit_callbacks(execute=True):
        marketer.post(reverse("segment_upload", args=[fair.pk]), {"file": upload})
    ordered.refresh_from_db()
    assert list(ordered.members.values_list("customer_id", flat=True)) == [buyers[1].pk]
    assert Event.objects.filter(name="segment_entered", properties__segment="fair-buyers").count() == 1


def test_a_static_segment_with_mistakes_stores_nothing_and_says_why(marketer, buyers):
    response = marketer.post(reverse("segment_static_create"), {"key": "", "name": ""}, **EN)
    assert response.status_code == 400
    page = text(response)
    assert "Give the segment a name." in page and "Choose a CSV file." in page
    assert "Use lower-case letters" in page
    assert not Segment.objects.filter(kind=Segment.Kind.STATIC).exists()

    segment = segment_save(key="lapsed", name="30 天未下单", rule_data=LAPSED, actor=None)
    upload = SimpleUploadedFile("x.csv", b"13800138000\n", content_type="text/csv")
    response = marketer.post(reverse("segment_upload", args=[segment.pk]), {"file": upload}, **EN)
    assert response.status_code == 400
    assert "Only a static segment takes a list of customers." in text(response)
    assert segment.members.count() == 2


def test_the_vocabulary_names_what_occurs_in_the_data(marketer, buyers):
    Tag.objects.filter(key="new").update(name="新客")
    CustomerRole.objects.get_or_create(key="buyer", defaults={"label": "采购商"})
    segment_save(key="lapsed", name="30 天未下单", rule_data=LAPSED, actor=None)
    vocabulary = marketer.get(reverse("api_segment_vocabulary")).json()
    events = {event["name"]: event for event in vocabulary["events"]}
    properties = {item["key"]: item["values"] for item in events["Order Completed"]["properties"]}
    assert set(properties) == {"revenue", "category"}
    assert set(properties["category"]) == {"美妆", "数码"}
    traits = {item["key"]: item["values"] for item in vocabulary["traits"]}
    assert {"city", "phone", "name", "role"} <= set(traits)
    assert set(traits["city"]) == {"深圳", "上海"}
    assert traits["phone"] == []  # a marketer may not see phones: the picker offers none
    assert {"key": "new", "name": "新客"} in vocabulary["tags"]
    assert {"key": "lapsed", "name": "30 天未下单"} in vocabulary["segments"]
    assert {"key": "buyer", "name": "采购商"} in vocabulary["roles"]
    assert "sms" in vocabulary["consent_channels"]

    schema = marketer.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "/api/segments/vocabulary/" in schema["paths"]


def test_the_vocabulary_offers_phone_values_only_to_those_who_may_see_them(client, user_in_role, buyers):
    client.force_login(user_in_role("Sales"))
    traits = {
        item["key"]: item["values"] for item in client.get(reverse("api_segment_vocabulary")).json()["traits"]
    }
    assert "13800138000" in traits["phone"]


def test_the_vocabulary_reads_only_the_latest_events(buyers):
    assert set(lists.event_properties(sample=1)) == {"Order Completed"}
    assert len(lists.event_properties(sample=1)["Order Completed"]) == 2  # one event's properties


def test_every_kind_of_condition_is_a_leaf_of_the_rule_language_and_every_operator_has_words():
    assert {kind.key for kind in LEAF_KINDS} <= set(LEAF_KEYS)
    assert set(COMPARISON_OPS) == set(COMPARISON_LABELS)
    config = builder_config()
    assert {"stage", "score", "event", "trait", "tag", "segment", "role", "consent"} == {
        kind["key"] for kind in config["kinds"]
    }
    for kind in config["kinds"]:
        assert kind["blank"] and next(iter(kind["blank"])) == kind["key"]


def test_a_segment_that_another_rule_reads_is_not_deleted_and_an_unused_one_is(marketer, buyers):
    segment_save(key="lapsed", name="30 天未下单", rule_data=LAPSED, actor=None)
    built_on = segment_save(key="lapsed-sz", name="深圳流失", rule_data={"segment": "lapsed"}, actor=None)
    lapsed = Segment.objects.get(key="lapsed")
    page = text(marketer.get(reverse("segment", args=[lapsed.pk]), **EN))
    assert "segment “深圳流失”" in page and "Delete segment" not in page
    response = marketer.post(reverse("segment_delete", args=[lapsed.pk]), follow=True, **EN)
    assert "is used by segment “深圳流失”" in text(response)
    assert Segment.objects.filter(pk=lapsed.pk).exists()

    marketer.post(reverse("segment_delete", args=[built_on.pk]))
    response = marketer.post(reverse("segment_delete", args=[lapsed.pk]), follow=True, **EN)
    assert "Segment “30 天未下单” deleted." in text(response)
    assert not Segment.objects.filter(key__in=["lapsed", "lapsed-sz"]).exists()
