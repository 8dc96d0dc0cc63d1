"""Tags as staff use them: groups per customer role, tagging on the profile, every change on the
timeline, and tags usable in rules at once."""

import pytest
from django.urls import reverse
from django.utils import timezone

from cdp.models import CustomerEventStats, Event
from segments.compiler import rule_customers
from segments.models import CustomerTag, Tag, TagGroup
from segments.rules import rule_parse
from segments.tags import customer_tag_groups, customers_tag, customers_untag, tag_group_save, tag_save
from tests.segments.test_rule_agreement import store


def person(role):
    return {"traits": {}, "role": role, "events": [], "tags": set(), "segments": set(), "consent": None}


@pytest.fixture
def people(server_source):
    return store(server_source, [person("supplier"), person("buyer")])


def test_tag_groups_show_on_the_profiles_of_their_roles_only(people, admin_user):
    supplier, buyer = people
    for_suppliers = tag_group_save(name="供应商资质", color="#16a34a", roles=["Supplier"], actor=admin_user)
    for_everyone = tag_group_save(name="渠道", color="#2563eb", actor=admin_user)
    certified = tag_save(key="iso9001", name="ISO9001", group=for_suppliers, actor=admin_user)
    online = tag_save(key="web-channel", name="线上", group=for_everyone, actor=admin_user)
    for tag in (certified, online):
        customers_tag(customer_ids=[supplier.pk, buyer.pk], tag=tag, actor=admin_user)

    def shown(customer):
        return {
            entry["group"].name: [tag.key for tag in entry["tags"]]
            for entry in customer_tag_groups(customer=customer)
        }

    assert shown(supplier) == {"供应商资质": ["iso9001"], "渠道": ["web-channel"]}
    assert shown(buyer) == {"渠道": ["web-channel"]}  # the supplier group is not for buyers


def test_tagging_is_on_the_timeline_and_in_rules_at_once(people, admin_user):
    supplier, buyer = people
    tag = tag_save(key="vip", name="VIP", actor=admin_user)
    assert customers_tag(customer_ids=[supplier.pk, buyer.pk], tag=tag, actor=admin_user) == 2
    assert customers_tag(customer_ids=[supplier.pk], tag=tag, actor=admin_user) == 0  # holds it already
    assert Event.objects.filter(name="tag_added", properties__tag="vip").count() == 2
    rule = rule_parse({"tag": "vip"})
    assert set(rule_customers(rule, today=timezone.localdate()).values_list("pk", flat=True)) == {
        supplier.pk,
        buyer.pk,
    }
    assert customers_untag(customer_ids=[buyer.pk], tag=tag, actor=admin_user) == 1
    assert Event.objects.get(name="tag_removed").customer_id == buyer.pk
    assert CustomerEventStats.objects.get(customer=buyer, name="tag_removed").count == 1
    assert list(rule_customers(rule, today=timezone.localdate()).values_list("pk", flat=True)) == [
        supplier.pk
    ]
    used_in_rules = rule_parse(
        {"event": "tag_added", "where": [{"property": "tag", "op": "eq", "value": "vip"}]}
    )
    assert rule_customers(used_in_rules, today=timezone.localdate()).count() == 2


def test_sales_tag_a_customer_on_the_profile_and_analysts_cannot(client, user_in_role, people, admin_user):
    supplier, _buyer = people
    tag = tag_save(key="hot-lead", name="高意向", actor=admin_user)
    client.force_login(user_in_role("Sales"))
    client.post(reverse("customer_tag_add", args=[supplier.pk]), {"tag": tag.pk})
    page = client.get(reverse("customer", args=[supplier.pk]), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "高意向" in page and "Remove the tag 高意向" in page
    client.post(reverse("customer_tag_remove", args=[supplier.pk, tag.pk]))
    assert not CustomerTag.objects.exists()

    client.force_login(user_in_role("Analyst"))
    assert client.post(reverse("customer_tag_add", args=[supplier.pk]), {"tag": tag.pk}).status_code == 403
    assert not CustomerTag.objects.exists()


def test_the_tags_page_lists_groups_with_counts_and_refuses_bad_input(
    client, user_in_role, people, admin_user
):
    group = tag_group_save(name="兴趣", color="#db2777", actor=admin_user)
    tag = tag_save(key="beauty", name="美妆", group=group, actor=admin_user)
    customers_tag(customer_ids=[customer.pk for customer in people], tag=tag, actor=admin_user)
    client.force_login(user_in_role("Marketer"))
    page = client.get(reverse("tags"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "兴趣" in page and "美妆" in page and "<td>2</td>" in page

    tags_before = Tag.objects.count()
    response = client.post(
        reverse("tag_create"), {"form": "tag", "key": "Bad Key", "name": ""}, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "Use lower-case letters" in body and "Give the tag a name." in body
    assert Tag.objects.count() == tags_before

    response = client.post(reverse("tag_create"), {"form": "group", "name": "兴趣", "color": "#123456"})
    assert response.status_code == 400 and TagGroup.objects.count() == 1

    client.post(
        reverse("tag_create"), {"form": "tag", "key": "new-customer", "name": "新客", "group": group.pk}
    )
    assert Tag.objects.get(key="new-customer").group == group

    client.force_login(user_in_role("Analyst"))
    assert client.post(reverse("tag_create"), {"form": "tag", "key": "x", "name": "x"}).status_code == 403
