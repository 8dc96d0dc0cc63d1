"""Journeys over the API: the palette, drafts, publishing with every problem and its node id,
pause / resume / archive, enrollments and per-node counts."""

from __future__ import annotations

import pytest

from journeys.matching import events_match
from journeys.models import Enrollment
from tests.journeys.conftest import edge, node, track

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketer(client, user_in_role):
    client.force_login(user_in_role("Marketer"))
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def post(client, url: str, data=None):
    return client.post(url, data or {}, content_type="application/json")


def create(client, graph: dict, **fields):
    response = post(client, "/api/journeys/", {"name": "新客培育", "draft_graph": graph, **fields})
    assert response.status_code == 201, response.json()
    return response.json()


def test_the_palette_lists_every_node_type_with_its_schema_and_handles(marketer):
    palette = {entry["type"]: entry for entry in marketer.get("/api/journeys/node-types/").json()}
    assert {
        "event_trigger",
        "segment_trigger",
        "tag_added_trigger",
        "delay",
        "wait_for_event",
        "condition",
    } <= set(palette)
    assert {"random_split", "goal", "exit", "send", "add_tag", "remove_tag", "set_trait", "add_score"} <= set(
        palette
    )
    assert {"form_submitted_trigger", "wechat_trigger", "api_trigger", "set_stage", "create_task"} <= set(
        palette
    )
    assert {"call_webhook", "ai_call"} <= set(palette)
    assert palette["create_task"]["handles"] == ["done", "not_reached", "timed_out"]
    assert palette["ai_call"]["handles"] == ["answered", "short_call", "not_answered"]
    assert "window" in palette["delay"]["config_schema"]["properties"]
    send = palette["send"]
    assert send["kind"] == "action"
    assert send["handles"] == ["delivered", "failed", "no_response"]
    assert {"account", "template", "no_response_seconds"} <= set(send["config_schema"]["properties"])
    assert palette["condition"]["dynamic_handles"] is True
    # Translated for the reader: the palette follows the request's language.
    chinese = {
        entry["type"]: entry
        for entry in marketer.get("/api/journeys/node-types/", HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    }
    assert chinese["delay"]["group"] != "Flow"
    assert (chinese["create_task"]["label"], chinese["wechat_trigger"]["label"]) == (
        "为负责人创建任务",
        "关注公众号或扫码",
    )


def test_the_palette_tells_which_config_values_change_a_nodes_handles(marketer):
    palette = {entry["type"]: entry for entry in marketer.get("/api/journeys/node-types/").json()}
    goal = palette["goal"]
    assert goal["handles"] == ["default"]
    assert goal["handles_when"] == [{"field": "exit", "equals": True, "handles": []}]
    assert palette["send"]["handles_when"] == [] and palette["condition"]["handles_when"] == []

    # What the palette says is what validation holds a graph to: a goal that ends the journey has no
    # handle to leave by, one that does not leads on.
    def problems(exit_: bool, connected: bool) -> list[str]:
        graph = {
            "nodes": [node("t1", "event_trigger", event="signed_up"), node("g1", "goal", exit=exit_)]
            + ([node("x1", "exit")] if connected else []),
            "edges": [edge("t1", "g1")] + ([edge("g1", "x1")] if connected else []),
        }
        found = post(marketer, "/api/journeys/validate/", {"graph": graph}).json()["problems"]
        return [problem["message"] for problem in found if problem["node"] == "g1"]

    assert problems(exit_=True, connected=False) == []
    assert problems(exit_=False, connected=True) == []
    assert problems(exit_=True, connected=True) == ["This node has no handle “default” (it has: -)."]
    assert problems(exit_=False, connected=False) != []


def test_publishing_refuses_a_graph_with_every_problem_and_its_node(marketer, tags):
    graph = {
        "nodes": [
            node("t1", "event_trigger", event="signed_up"),
            node("d1", "delay"),  # neither seconds nor until_time
            node("g1", "add_tag", tag="no-such-tag"),  # its handle leads nowhere, and the tag is missing
            node("w1", "wait_for_event", event="order_completed", timeout_seconds=3600),  # unreachable
            node("q1", "quantum_leap"),
            node("x1", "exit"),
        ],
        "edges": [edge("t1", "d1"), edge("d1", "g1"), edge("w1", "x1", "happened"), edge("t1", "x1", "nope")],
    }
    journey = create(marketer, graph)
    response = post(marketer, f"/api/journeys/{journey['id']}/publish/")
    assert response.status_code == 400
    problems = {(problem["node"], problem["message"]) for problem in response.json()["problems"]}
    assert ("d1", "give seconds, until_time or a window") in problems
    assert ("g1", "There is no tag with the key “no-such-tag”.") in problems
    assert ("g1", "The handle “default” leads nowhere: connect it, or mark it as ending.") in problems
    assert ("w1", "No trigger leads to this node.") in problems
    assert ("w1", "The handle “timed_out” leads nowhere: connect it, or mark it as ending.") in problems
    assert ("q1", "There is no node type “quantum_leap”.") in problems
    assert ("t1", "This node has no handle “nope” (it has: default).") in problems
    assert marketer.get(f"/api/journeys/{journey['id']}/").json()["live_version"] is None

    # The same answer without publishing, for the canvas while it edits.
    checked = post(marketer, "/api/journeys/validate/", {"graph": graph}).json()["problems"]
    assert {(problem["node"], problem["message"]) for problem in checked} == problems


def test_the_mistakes_of_a_conditions_rules_are_each_at_their_branch_and_condition(marketer, tags):
    """The canvas shows each one beside the condition it is about, in the branch's rule builder."""
    rules = [
        {"and": [{"tag": "lead"}, {"event": "Order Completed", "within_days": 0}]},  # malformed
        {"or": [{"tag": "lead"}, {"not": {"tag": "no-such-tag"}}]},  # names what does not exist
    ]
    graph = {
        "nodes": [
            node("t1", "tag_added_trigger", tag="lead"),
            node(
                "c1",
                "condition",
                branches=[{"id": "a", "rule": rules[0]}, {"id": "b", "rule": rules[1]}],
                ends=["a", "else"],
            ),
        ],
        "edges": [edge("t1", "c1")],
    }
    checked = post(marketer, "/api/journeys/validate/", {"graph": graph}).json()["problems"]
    assert {
        "node": "c1",
        "field": "config.branches.0.rule",
        "path": "$.and[1].within_days",
        "message": "Input should be greater than or equal to 1",
    } in checked

    graph["nodes"][1]["config"]["branches"][0]["rule"] = {"tag": "lead"}
    checked = post(marketer, "/api/journeys/validate/", {"graph": graph}).json()["problems"]
    (unknown,) = [problem for problem in checked if problem["field"].startswith("config.branches")]
    assert (unknown["node"], unknown["field"], unknown["path"]) == (
        "c1",
        "config.branches.1.rule",
        "$.or[1].not.tag",
    )
    assert "no-such-tag" in unknown["message"]
    # Problems elsewhere name no rule path.
    assert all("path" not in problem for problem in checked if problem is not unknown)


def test_a_graph_without_a_trigger_is_refused(marketer):
    journey = create(marketer, {"nodes": [node("x1", "exit")], "edges": []})
    problems = post(marketer, f"/api/journeys/{journey['id']}/publish/").json()["problems"]
    assert {
        "node": None,
        "field": "nodes",
        "message": "A journey needs a trigger: what starts a customer on it.",
    } in (problems)


def test_publish_pause_resume_archive_enrollments_and_counts(marketer, tags, make_customer):
    graph = {
        "nodes": [
            node("t1", "tag_added_trigger", tag="lead"),
            node("d1", "delay", seconds=600),
            node("g1", "add_tag", tag="bought", ends=["default"]),
        ],
        "edges": [edge("t1", "d1"), edge("d1", "g1")],
    }
    journey = create(marketer, graph)
    version = post(marketer, f"/api/journeys/{journey['id']}/publish/")
    assert version.status_code == 201
    assert (version.json()["number"], version.json()["trigger_events"]) == (1, ["tag_added"])
    assert marketer.get(f"/api/journeys/{journey['id']}/").json()["status"] == "active"

    customer = make_customer()
    track(customer, "tag_added", {"tag": "lead"})
    other = make_customer(name="另一位", phone="+8613700137000")
    track(other, "tag_added", {"tag": "vip"})  # another tag starts nothing
    events_match(customer_ids=[customer.pk, other.pk])

    enrollments = marketer.get(f"/api/journeys/{journey['id']}/enrollments/").json()
    assert [(e["customer_id"], e["node_id"], e["phase"], e["version"]) for e in enrollments] == [
        (customer.pk, "d1", "resume", 1)
    ]
    assert (
        marketer.get(f"/api/journeys/{journey['id']}/enrollments/?node=d1").json()[0]["customer_id"]
        == customer.pk
    )
    stats = marketer.get(f"/api/journeys/{journey['id']}/stats/").json()
    assert (stats["entered"], stats["active"], stats["converted"]) == (1, 1, 0)
    assert stats["nodes"]["t1"] == {"entered": 1, "waiting": 0, "left": {"default": 1}}
    assert stats["nodes"]["d1"] == {"entered": 1, "waiting": 1, "left": {}}
    assert [(v["number"], v["entered"], v["converted"], v["rate"]) for v in stats["versions"]] == [
        (1, 1, 0, 0.0)
    ]

    assert post(marketer, f"/api/journeys/{journey['id']}/pause/").json()["status"] == "paused"
    assert post(marketer, f"/api/journeys/{journey['id']}/pause/").status_code == 409
    assert post(marketer, f"/api/journeys/{journey['id']}/resume/").json()["status"] == "active"
    assert post(marketer, f"/api/journeys/{journey['id']}/archive/").json()["status"] == "archived"
    assert Enrollment.objects.get().status == "exited"
    assert post(marketer, f"/api/journeys/{journey['id']}/publish/").status_code == 409


def test_editing_the_draft_and_entry_policy(marketer):
    journey = create(marketer, {"nodes": [], "edges": []})
    response = marketer.put(
        f"/api/journeys/{journey['id']}/",
        {"name": "购物车", "entry_policy": "once_per_key", "draft_graph": {"nodes": [], "edges": []}},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "entry_key_property": ["Name the trigger event's property that holds the key."]
    }
    response = marketer.put(
        f"/api/journeys/{journey['id']}/",
        {"name": "购物车", "entry_policy": "once_per_key", "entry_key_property": "cart_id"},
        content_type="application/json",
    )
    assert (response.json()["entry_policy"], response.json()["entry_key_property"]) == (
        "once_per_key",
        "cart_id",
    )


def test_analysts_read_journeys_but_change_nothing(client, user_in_role):
    client.force_login(user_in_role("Analyst"))
    assert client.get("/api/journeys/").status_code == 200
    assert client.get("/api/journeys/node-types/").status_code == 200
    assert post(client, "/api/journeys/", {"name": "x"}).status_code == 403


def test_the_schema_describes_the_journey_api(marketer):
    schema = marketer.get("/api/schema/").content.decode()
    for path in (
        "/api/journeys/node-types/",
        "/api/journeys/{journey_id}/publish/",
        "/api/journeys/{journey_id}/stats/",
    ):
        assert path in schema


def test_tags_and_segments_a_journey_reads_are_not_deleted(marketer, tags, user_in_role, client_factory):
    from segments.models import Segment, Tag
    from segments.services import segment_save

    segment_save(key="lapsed", name="流失客户", rule_data={"tag": "lost"}, actor=None)
    graph = {
        "nodes": [
            node("t1", "segment_trigger", segment="lapsed", on="entered"),
            node(
                "c1", "condition", branches=[{"id": "lead", "rule": {"tag": "lead"}}], ends=["lead", "else"]
            ),
        ],
        "edges": [edge("t1", "c1")],
    }
    journey = create(marketer, graph)
    admin = client_factory()
    admin.force_login(user_in_role("Admin", username="boss"))

    refused = admin.delete("/api/tags/lead/")
    assert refused.status_code == 409 and "新客培育" in str(refused.json())  # read by the draft's condition
    segment = Segment.objects.get(key="lapsed")
    refused = admin.delete(f"/api/segments/{segment.pk}/")
    assert refused.status_code == 409 and "新客培育" in str(refused.json())
    assert admin.delete("/api/tags/bought/").status_code == 200  # nothing reads it

    # Published, then the draft no longer reads the tag: the live version still does.
    assert post(marketer, f"/api/journeys/{journey['id']}/publish/").status_code == 201
    graph["nodes"][1] = node(
        "c1", "condition", branches=[{"id": "vip", "rule": {"trait": "vip", "op": "exists"}}]
    )
    assert (
        marketer.put(
            f"/api/journeys/{journey['id']}/",
            {"name": "新客培育", "draft_graph": graph},
            content_type="application/json",
        ).status_code
        == 200
    )
    assert admin.delete("/api/tags/lead/").status_code == 409

    # Archived with no one inside: nothing of it is read any more.
    assert post(marketer, f"/api/journeys/{journey['id']}/archive/").status_code == 200
    assert admin.delete("/api/tags/lead/").status_code == 200
    assert not Tag.objects.filter(key="lead").exists()


def test_a_stage_a_journey_sets_is_not_deleted(marketer, tags, user_in_role, client_factory):
    from segments.stages import stage_save

    stage_save(key="nurturing", name="培育中", rule_data={"tag": "lead"}, actor=None)
    create(
        marketer,
        {
            "nodes": [
                node("t1", "event_trigger", event="signed_up"),
                node("s1", "set_stage", stage="nurturing", ends=["default"]),
            ],
            "edges": [edge("t1", "s1")],
        },
    )
    admin = client_factory()
    admin.force_login(user_in_role("Admin", username="boss"))
    refused = admin.delete("/api/stages/nurturing/")
    assert refused.status_code == 409 and "新客培育" in str(refused.json())


def test_a_draft_save_from_an_old_revision_is_refused_with_the_current_draft(marketer):
    journey = create(marketer, {"nodes": [], "edges": []})
    assert journey["draft_revision"] == 0
    url = f"/api/journeys/{journey['id']}/"
    first = {
        "name": "新客培育",
        "draft_graph": {"nodes": [node("t1", "event_trigger", event="a")], "edges": []},
    }
    saved = marketer.put(url, {**first, "draft_revision": 0}, content_type="application/json")
    assert saved.status_code == 200 and saved.json()["draft_revision"] == 1

    # A second editor still holding revision 0 saves: refused, told what is there now.
    stale = {"name": "新客培育", "draft_graph": {"nodes": [], "edges": []}, "draft_revision": 0}
    refused = marketer.put(url, stale, content_type="application/json")
    assert refused.status_code == 409
    assert refused.json()["detail"] == "Someone else saved this journey since you opened it."
    assert refused.json()["current"]["draft_revision"] == 1
    assert [n["id"] for n in refused.json()["current"]["draft_graph"]["nodes"]] == ["t1"]
    assert marketer.get(url).json()["draft_graph"]["nodes"][0]["id"] == "t1"

    # Saving again from the current revision goes through; a save without a revision always does.
    assert (
        marketer.put(url, {**stale, "draft_revision": 1}, content_type="application/json").status_code == 200
    )
    unchecked = marketer.put(url, first, content_type="application/json")
    assert unchecked.status_code == 200 and unchecked.json()["draft_revision"] == 3


def test_publishing_keeps_the_version_note_and_lists_the_versions(marketer, tags):
    graph = {"nodes": [node("t1", "event_trigger", event="signed_up", ends=["default"])], "edges": []}
    journey = create(marketer, graph)
    published = post(marketer, f"/api/journeys/{journey['id']}/publish/", {"note": "首发"})
    assert published.status_code == 201 and published.json()["note"] == "首发"
    assert post(marketer, f"/api/journeys/{journey['id']}/publish/").status_code == 201
    versions = marketer.get(f"/api/journeys/{journey['id']}/versions/").json()
    assert [(v["number"], v["note"]) for v in versions] == [(2, ""), (1, "首发")]
    assert versions[1]["graph"] == graph and versions[1]["published_by"]
