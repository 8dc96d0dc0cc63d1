"""The tag page as marketers and sales use it: rename and recolour, dynamic tags from a rule, tag a
segment or an uploaded list at once, merge two tags that mean the same, delete with a count of who
loses it, and refusals while a rule reads the tag."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from cdp.models import Event
from segments.models import CustomerTag, Tag
from segments.services import segment_save
from segments.tags import customers_tag, tag_save
from tests.cdp.test_open_api import api  # noqa: F401 (fixture)
from tests.segments.test_rule_agreement import store
from tests.segments.test_segment_pages import builder_config_of
from tests.segments.test_stages_scores import order, person, view

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


@pytest.fixture
def people(source):
    return store(source, [person(view(1)), person(order(2)), person(view(1), order(5))])


def holders(key):
    return set(CustomerTag.objects.filter(tag__key=key).values_list("customer_id", flat=True))


def test_marketers_make_a_dynamic_tag_in_the_rule_builder_and_bad_rules_are_refused(
    client, user_in_role, people
):
    visitor, buyer, browsing_buyer = people
    client.force_login(user_in_role("Marketer"))
    page = client.get(reverse("tag_dynamic_new"), **EN).content.decode()
    assert 'id="rule-builder"' in page and "Live count" in page
    response = client.post(
        reverse("tag_dynamic_new"),
        {"key": "hot", "name": "Hot", "color": "#dc2626", "rule": '{"event": "Product Veiwed"}'},
        **EN,
    )
    assert response.status_code == 400
    (problem,) = builder_config_of(response)["problems"]
    assert problem["path"] == "$.event" and "did you mean “Product Viewed”" in problem["message"]
    assert 'value="Hot"' in response.content.decode()  # what was typed is kept
    assert not Tag.objects.filter(key="hot").exists()
    response = client.post(
        reverse("tag_dynamic_new"),
        {"key": "hot", "name": "Hot", "color": "#dc2626", "rule": '{"event": "Product Viewed"}'},
        follow=True,
        **EN,
    )
    assert "“Hot” saved: 2 customers hold it now." in response.content.decode()
    assert holders("hot") == {visitor.pk, browsing_buyer.pk}

    hot = Tag.objects.get(key="hot")
    page = client.get(reverse("tag", args=[hot.pk]), **EN).content.decode()
    assert "2 customers hold it" in page and "Tag many customers at once" not in page  # a rule decides
    client.post(
        reverse("tag_rule", args=[hot.pk]),
        {"name": "Buying", "color": "#16a34a", "rule": '{"event": "Order Completed"}'},
    )
    hot.refresh_from_db()
    assert (hot.name, hot.color, hot.key) == ("Buying", "#16a34a", "hot")
    assert holders("hot") == {buyer.pk, browsing_buyer.pk}


def test_marketers_tag_a_segment_sales_an_uploaded_list_and_see_the_rows_that_named_nobody(
    client, user_in_role, people, admin_user
):
    visitor, buyer, browsing_buyer = people
    vip = tag_save(key="vip", name="VIP", actor=admin_user)
    buyers = segment_save(
        key="buyers", name="Buyers", rule_data={"event": "Order Completed"}, actor=admin_user
    )
    # Tagging a whole segment (journeys may start for each) is for those who manage segments.
    client.force_login(user_in_role("Sales"))
    response = client.post(reverse("tag_bulk", args=[vip.pk]), {"segment": buyers.pk, "action": "add"}, **EN)
    assert response.status_code == 403
    assert holders("vip") == set()
    assert (
        client.post(reverse("tag_bulk", args=[vip.pk]), {"segment": "x", "action": "add"}).status_code == 403
    )
    client.force_login(user_in_role("Marketer"))
    assert (
        client.post(reverse("tag_bulk", args=[vip.pk]), {"segment": "x", "action": "add"}).status_code == 404
    )
    response = client.post(
        reverse("tag_bulk", args=[vip.pk]), {"segment": buyers.pk, "action": "add"}, follow=True, **EN
    )
    assert "2 customers got the tag." in response.content.decode()
    assert holders("vip") == {buyer.pk, browsing_buyer.pk}

    client.force_login(user_in_role("Sales"))

    listing = f"customer_id\n{visitor.pk}\n{buyer.pk}\n99999999\n".encode()
    response = client.post(
        reverse("tag_bulk", args=[vip.pk]),
        {"file": SimpleUploadedFile("list.csv", listing, content_type="text/csv"), "action": "remove"},
        **EN,
    )
    body = response.content.decode()
    assert (
        "1 customer lost the tag." in body and "1 of 3 rows named no customer" in body and "99999999" in body
    )
    assert holders("vip") == {browsing_buyer.pk}
    assert Event.objects.filter(name="tag_removed", customer=buyer).exists()


def test_merging_and_deleting_tags_and_refusals_while_a_rule_reads_them(
    client, user_in_role, people, admin_user
):
    visitor, buyer, browsing_buyer = people
    wechat, weixin = (
        tag_save(key="wechat", name="WeChat", actor=admin_user),
        tag_save(key="weixin", name="微信", actor=admin_user),
    )
    customers_tag(customer_ids=[visitor.pk], tag=wechat, actor=admin_user)
    customers_tag(customer_ids=[visitor.pk, buyer.pk], tag=weixin, actor=admin_user)
    segment_save(key="wx", name="WeChat people", rule_data={"tag": "weixin"}, actor=admin_user)
    client.force_login(user_in_role("Marketer"))
    page = client.get(reverse("tag", args=[weixin.pk]), **EN).content.decode()
    assert "segment “WeChat people”" in page and "Delete tag" not in page
    refused = client.post(reverse("tag_merge", args=[weixin.pk]), {"into": wechat.pk}, **EN)
    assert refused.status_code == 400 and "is used by segment “WeChat people”" in refused.content.decode()

    segment_save(key="wx", name="WeChat people", rule_data={"tag": "wechat"}, actor=admin_user)
    client.post(reverse("tag_merge", args=[weixin.pk]), {"into": wechat.pk})
    assert holders("wechat") == {visitor.pk, buyer.pk} and not Tag.objects.filter(key="weixin").exists()

    unused = tag_save(key="old", name="Old", actor=admin_user)
    customers_tag(customer_ids=[browsing_buyer.pk], tag=unused, actor=admin_user)
    page = client.get(reverse("tag", args=[unused.pk]), **EN).content.decode()
    assert "1 customer will lose it" in page
    response = client.post(reverse("tag_delete", args=[unused.pk]), follow=True, **EN)
    assert "Tag “Old” deleted; 1 customer lost it." in response.content.decode()


def test_over_the_api_too_only_segment_managers_tag_a_whole_segment(api, user_in_role, people, admin_user):  # noqa: F811
    tag_save(key="vip", name="VIP", actor=admin_user)
    segment_save(key="buyers", name="Buyers", rule_data={"event": "Order Completed"}, actor=admin_user)
    body = {"segment": "buyers"}
    response = api(user_in_role("Sales")).post(
        "/api/tags/vip/customers/", body, content_type="application/json"
    )
    assert response.status_code == 403
    assert holders("vip") == set()
    response = api(user_in_role("Marketer")).post(
        "/api/tags/vip/customers/", body, content_type="application/json"
    )
    assert (response.status_code, response.json()["changed"]) == (200, 2)
