"""The templates gallery: every template is listed translated, becomes a draft in a workspace that has
what it names (its missing tags created, its sends on the workspace's accounts), validates with no
problem, and runs to its end in test mode. In an empty workspace the draft reports what to complete."""

from __future__ import annotations

import pytest

from connectors.models import MessageTemplate
from connectors.services import template_save
from journeys.gallery import TAG_GROUPS, TEMPLATES
from journeys.models import Journey
from segments.models import Tag, TagGroup
from segments.services import segment_save
from segments.stages import stage_save

pytestmark = pytest.mark.django_db(transaction=True)

BODIES = {
    "sms": {"template_code": "SMS_1", "params": {"name": "{{ customer.name }}"}},
    "email": {"subject": "{{ customer.name }}，双十一采购节", "html": "<p>满5000减300</p>"},
    "wechat_template": {"template_id": "TPL_1", "fields": {"first": "{{ customer.name }}您好"}},
    "call": {"script_id": "script-1", "params": {"name": "{{ customer.name }}"}},
}


@pytest.fixture
def marketer(client, user_in_role):
    client.force_login(user_in_role("Marketer"))
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


@pytest.fixture
def workspace(make_account, make_customer):
    """Accounts of every channel the gallery sends on, the message templates, segments and stages it
    names: what a marketer sets up before publishing."""
    accounts = {
        "wechat_template": make_account(
            kind="sandbox_wechat_template", name="服务号", appid="wx0000sandbox00000"
        ),
        "sms": make_account(),
        "email": make_account(kind="sandbox_email", name="邮件"),
        "call": make_account(kind="sandbox_call", name="外呼"),
    }
    for template in TEMPLATES.values():
        for node in template.graph(lambda channel: accounts[channel].pk)["nodes"]:
            config = node["config"]
            channel = {account.pk: channel for channel, account in accounts.items()}.get(
                config.get("account")
            )
            keys = [config.get("template"), config.get("default_template")]
            keys += [script["template"] for script in config.get("scripts", [])]
            for key in filter(None, keys):
                if not MessageTemplate.objects.filter(key=key).exists():
                    template_save(
                        key=key,
                        name=key,
                        channel=channel,
                        body=BODIES[channel],
                        known_traits=set(),
                        allow_unknown=True,
                    )
    for key in ("dormant-6m", "double11-suppliers"):
        segment_save(key=key, name=key, rule_data={"score": {"op": "gte", "value": 0}}, actor=None)
    stage_save(key="nurturing", name="培育中", rule_data={"score": {"op": "gte", "value": 1000}}, actor=None)
    return make_customer(openid="o-sandbox-openid-1", email="wangfang@example.com")


def test_the_gallery_lists_at_least_twelve_translated_templates(marketer):
    listed = marketer.get("/api/journeys/templates/").json()
    assert len(listed) >= 12
    keys = {entry["key"] for entry in listed}
    assert {
        "new-follower-48h",
        "live-stream-signup",
        "dormant-ai-call",
        "no-order-recall",
        "cart-recovery",
    } <= keys
    assert {"post-purchase-care", "birthday", "double11-suppliers", "lead-follow-up", "form-signup"} <= keys
    assert {"key-event-follow-up", "activity-scoring"} <= keys
    dormant = next(entry for entry in listed if entry["key"] == "dormant-ai-call")
    assert dormant["needs"]["segments"][0]["key"] == "dormant-6m"
    assert "gallery-call-smart-home" in dormant["needs"]["message_templates"]
    chinese = marketer.get("/api/journeys/templates/", HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    assert {entry["name"] for entry in chinese}.isdisjoint({entry["name"] for entry in listed})
    assert "/api/journeys/templates/{key}/use/" in marketer.get("/api/schema/").content.decode()


@pytest.mark.parametrize("key", sorted(TEMPLATES))
def test_each_template_becomes_a_draft_that_validates_and_runs_in_test_mode(marketer, workspace, key):
    response = marketer.post(f"/api/journeys/templates/{key}/use/", {}, content_type="application/json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["problems"] == []
    journey = Journey.objects.get(pk=body["journey"]["id"])
    assert (journey.status, journey.name) == ("draft", str(TEMPLATES[key].name))
    result = marketer.post(
        f"/api/journeys/{journey.pk}/test/",
        {"customer_id": workspace.pk, "context": {"order_id": "SO-1", "form_id": "signup"}},
        content_type="application/json",
    ).json()
    assert result["status"] == "completed", result
    assert len(result["steps"]) >= 3
    # Published, it is a journey like any other.
    assert marketer.post(f"/api/journeys/{journey.pk}/publish/").status_code == 201


def test_in_an_empty_workspace_the_draft_names_what_to_complete_and_creates_the_tags(marketer):
    response = marketer.post(
        "/api/journeys/templates/dormant-ai-call/use/", {"name": "沉睡唤醒"}, content_type="application/json"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["journey"]["name"] == "沉睡唤醒"
    assert set(body["created_tags"]) == {
        "call-interested",
        "call-unreached",
        "industry-smart-home",
        "industry-computer",
        "industry-security",
    }
    assert Tag.objects.get(key="industry-smart-home").group.name == str(TAG_GROUPS["smart-home"][0])
    assert TagGroup.objects.count() == 3
    messages = {(problem["node"], problem["message"]) for problem in body["problems"]}
    assert ("t1", "There is no segment with the key “dormant-6m”.") in messages
    assert ("c1", "There is no channel account 0.") in messages
    assert ("s1", "There is no message template with the key “gallery-winback-coupon”.") in messages
    assert (
        marketer.post("/api/journeys/templates/nothing/use/", {}, content_type="application/json").status_code
        == 404
    )
