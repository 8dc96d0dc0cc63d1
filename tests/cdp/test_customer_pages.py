"""The customer list and the unified profile, as sales staff, marketers and analysts see them."""

import pytest
from django.urls import reverse

from cdp.ingest import batches_process, inbox_store
from cdp.models import Customer, Note
from tests.cdp.test_identity import send


@pytest.fixture
def buyer(server_source):
    send(
        server_source,
        {
            "kind": "identify",
            "userId": "b-1",
            "traits": {
                "name": "周杰",
                "phone": "13800138000",
                "email": "zj@example.com",
                "city": "深圳",
                "role": "buyer",
            },
        },
        {"userId": "b-1", "event": "Order Completed", "properties": {"revenue": 1200, "order_id": "SO-1"}},
        {
            "anonymousId": "wx-1",
            "event": "Menu Clicked",
            "context": {"traits": {"phone": "13800138000", "openid": "o-77", "appid": "wxA"}},
        },
    )
    return Customer.objects.get(merged_into=None)


def login(client, user_in_role, role):
    client.force_login(user_in_role(role))
    return client


def test_the_empty_list_says_how_customers_arrive(client, user_in_role):
    html = (
        login(client, user_in_role, "Sales")
        .get(reverse("customers"), HTTP_ACCEPT_LANGUAGE="en")
        .content.decode()
    )
    assert "No customers yet" in html
    assert "Data sources" in html


def test_the_list_scrolls_in_pages_without_counting_every_customer(
    client, user_in_role, django_assert_max_num_queries
):
    from django.utils import timezone

    from cdp.customer_views import LIST_PAGE

    now = timezone.now()
    Customer.objects.bulk_create(
        Customer(name=f"客户{number:03d}", last_seen_at=now - timezone.timedelta(minutes=number))
        for number in range(LIST_PAGE + 5)
    )
    login(client, user_in_role, "Sales")
    with django_assert_max_num_queries(20) as queries:
        first = client.get(reverse("customers"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert not any("COUNT(" in query["sql"].upper() for query in queries.captured_queries)
    assert "客户000" in first and f"客户{LIST_PAGE - 1:03d}" in first and f"客户{LIST_PAGE:03d}" not in first
    assert "page=2" in first

    second = client.get(reverse("customers"), {"page": 2}, HTTP_HX_REQUEST="true").content.decode()
    assert f"客户{LIST_PAGE:03d}" in second and f"客户{LIST_PAGE + 4:03d}" in second
    assert "page=3" not in second
    malformed = client.get(reverse("customers"), {"page": "x2"}, HTTP_HX_REQUEST="true").content.decode()
    assert "客户000" in malformed  # a malformed page number shows the first page


@pytest.mark.parametrize("query", ["13800138000", "+86 138 0013 8000", "ZJ@example.com", "周", "o-77", "b-1"])
def test_search_finds_a_customer_by_phone_email_name_or_wechat_id(client, user_in_role, buyer, query):
    html = login(client, user_in_role, "Sales").get(reverse("customers"), {"q": query}).content.decode()
    assert reverse("customer", args=[buyer.pk]) in html


def test_search_without_a_match_says_so(client, user_in_role, buyer):
    response = login(client, user_in_role, "Sales").get(
        reverse("customers"), {"q": "13900000000"}, HTTP_HX_REQUEST="true", HTTP_ACCEPT_LANGUAGE="en"
    )
    assert "No customer matches" in response.content.decode()
    assert "<html" not in response.content.decode()


@pytest.mark.parametrize(
    ("role", "sees_full_phone"), [("Sales", True), ("Marketer", False), ("Analyst", False)]
)
def test_phones_are_masked_for_roles_that_may_not_see_them(
    client, user_in_role, buyer, role, sees_full_phone
):
    login(client, user_in_role, role)
    for page in (reverse("customers"), reverse("customer", args=[buyer.pk])):
        html = client.get(page).content.decode()
        assert ("+8613800138000" in html) is sees_full_phone, page
        assert ("+86 138****8000" in html) is not sees_full_phone, page


def test_the_profile_shows_identities_traits_activity_and_timeline(client, user_in_role, buyer):
    html = (
        login(client, user_in_role, "Sales")
        .get(reverse("customer", args=[buyer.pk]), HTTP_ACCEPT_LANGUAGE="en")
        .content.decode()
    )
    for expected in (
        "周杰",
        "深圳",
        "zj@example.com",
        "wechat_openid:wxA",
        "Order Completed",
        "Menu Clicked",
        "SO-1",
    ):
        assert expected in html, expected


def test_a_merged_customers_link_leads_to_the_survivor(client, user_in_role, server_source, buyer):
    send(
        server_source,
        {"userId": "other", "event": "Viewed", "context": {"traits": {"email": "other@example.com"}}},
    )
    other = Customer.objects.get(identities__value="other")
    send(
        server_source,
        {"userId": "b-1", "event": "Linked", "context": {"traits": {"email": "other@example.com"}}},
    )
    merged = max(buyer, other, key=lambda customer: customer.pk)
    response = login(client, user_in_role, "Sales").get(reverse("customer", args=[merged.pk]))
    assert response["Location"] == reverse("customer", args=[min(buyer.pk, other.pk)])


def test_the_timeline_pages_older_events_and_fetches_newer_ones(client, user_in_role, server_source, buyer):
    inbox_store(
        source=server_source,
        events=[
            {
                "kind": "track",
                "name": f"Step {index:03d}",
                "messageId": f"step-{index}",
                "userId": "b-1",
                "anonymousId": None,
                "timestamp": f"2026-11-01T{index // 60:02d}:{index % 60:02d}:00+08:00",
                "properties": {},
                "context": {},
                "traits": {},
            }
            for index in range(120)
        ],
    )
    batches_process()
    login(client, user_in_role, "Sales")
    first_page = client.get(reverse("customer", args=[buyer.pk])).content.decode()
    assert first_page.count('class="event"') == 50
    assert 'hx-trigger="revealed"' in first_page

    older = client.get(
        reverse("customer_timeline", args=[buyer.pk]), {"before": "2026-11-01T01:00:00+08:00_0"}
    )
    names = [line for line in older.content.decode().split("<strong>")[1:]]
    assert len(names) == 50 and names[0].startswith("Step 059")

    newest = max(int(part.split('"')[0]) for part in first_page.split('data-id="')[1:])
    send(server_source, {"userId": "b-1", "event": "Brand New", "timestamp": "2026-11-23T10:00:00+08:00"})
    newer = client.get(reverse("customer_timeline", args=[buyer.pk]), {"since": newest}).content.decode()
    assert "Brand New" in newer and "Order Completed" not in newer


def test_sales_add_notes_and_set_the_owner_analysts_cannot(client, user_in_role, buyer):
    sales = user_in_role("Sales", username="wang")
    client.force_login(sales)
    client.post(reverse("customer_note", args=[buyer.pk]), {"text": "想要 200 套门禁，月底前报价"})
    client.post(reverse("customer_owner", args=[buyer.pk]), {"owner": sales.pk})
    buyer.refresh_from_db()
    assert buyer.owner == sales
    assert Note.objects.get().text == "想要 200 套门禁，月底前报价"

    client.force_login(user_in_role("Analyst"))
    assert client.post(reverse("customer_note", args=[buyer.pk]), {"text": "x"}).status_code == 403
    assert client.post(reverse("customer_owner", args=[buyer.pk]), {"owner": ""}).status_code == 403
    assert Note.objects.count() == 1
