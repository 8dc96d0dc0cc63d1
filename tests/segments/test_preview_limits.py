"""Security review finding 7: the live count of a rule is bounded and is no oracle. Only those who
build segments may count a rule; someone without ``view_pii`` may not test phones, emails or ID
numbers (the review recovered a masked phone in about 40 counts); a rule is at most so large and so
deep; and a count that takes too long is refused with a sentence, not left to run."""

from cdp.models import Customer
from segments import services
from segments.models import Segment
from tests.cdp.test_open_api import api  # noqa: F401 (fixture)
from tests.segments.test_segments_api import buyers  # noqa: F401 (fixture)

ORACLE = {
    "and": [
        {"trait": "user_id", "op": "eq", "value": "U1"},
        {"trait": "phone", "op": "gte", "value": "+86138"},
    ]
}


def preview(client, rule):
    return client.post(
        "/api/segments/preview/", {"rule": rule}, content_type="application/json", HTTP_ACCEPT_LANGUAGE="en"
    )


def problems(response) -> dict:
    found: dict[str, list[str]] = {}
    for problem in response.json()["errors"]:
        found.setdefault(problem["path"], []).append(problem["message"])
    return found


REFUSED = "“%s” holds personal data: only people who may see personal data can test it in a rule."


def test_the_reviews_phone_oracle_is_refused_to_a_marketer_without_view_pii(api, user_in_role, buyers):  # noqa: F811
    marketer = api(user_in_role("Marketer"))
    response = preview(marketer, ORACLE)
    assert response.status_code == 400
    assert REFUSED % "phone" in problems(response)["$.and[1].trait"]
    # Under a Chinese key, and as an event's property, too.
    rule = {
        "or": [
            {"trait": "手机号", "op": "exists"},
            {"event": "Form Submitted", "where": [{"property": "身份证号", "op": "exists"}]},
        ]
    }
    found = problems(preview(marketer, rule))
    assert REFUSED % "手机号" in found["$.or[0].trait"]
    assert REFUSED % "身份证号" in found["$.or[1].where[0].property"]
    # Saving it is refused the same way: a segment's size would tell the same.
    response = marketer.post(
        "/api/segments/",
        {"key": "probe", "name": "probe", "rule": ORACLE},
        content_type="application/json",
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 400
    assert not Segment.objects.filter(key="probe").exists()


def test_an_admin_may_test_phones(api, user_in_role, buyers):  # noqa: F811
    response = preview(api(user_in_role("Admin")), {"trait": "city", "op": "exists"})
    assert response.status_code == 200
    assert response.json()["count"] == 3


def test_a_rule_too_large_or_too_deep_is_refused_with_its_size(api, user_in_role, db):  # noqa: F811
    marketer = api(user_in_role("Marketer"))
    wide = {
        "or": [
            {"and": [{"trait": "city", "op": "eq", "value": f"c{group}-{index}"} for index in range(11)]}
            for group in range(10)
        ]
    }
    response = preview(marketer, wide)
    assert response.status_code == 400
    assert problems(response)["$"] == ["The rule has 110 conditions; at most 100 are allowed."]

    deep = {"trait": "city", "op": "exists"}
    for _ in range(8):
        deep = {"not": deep}
    response = preview(marketer, deep)
    assert problems(response)["$"] == ["The rule's groups are nested 9 deep; at most 8 are allowed."]


def test_a_count_that_takes_too_long_is_stopped_and_explained(api, user_in_role, db, monkeypatch):  # noqa: F811
    Customer.objects.bulk_create(
        [Customer(name=f"客户{index}", traits={"city": f"城市{index}"}) for index in range(20_000)]
    )
    monkeypatch.setattr(services, "PREVIEW_TIMEOUT_MS", 1)
    rule = {"or": [{"trait": "city", "op": "contains", "value": f"{digit}9"} for digit in range(10)]}
    response = preview(api(user_in_role("Marketer")), rule)
    assert response.status_code == 400
    (message,) = problems(response)["$"]
    assert message.startswith("The rule took over 0 seconds to count; narrow it")
