"""Roles admins make on the roles page, with a customer scope: a Sales role that sees its own
customers finds, opens, exports and hears about those only; the last user manager is kept; every
change is in the audit log; a change of rights closes the user's open live-data sockets."""

import csv
import io

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse

from cdp.access import ROLE_CAPABILITIES
from cdp.asgi import application
from cdp.models import AuditEntry, Customer, StaffRole, Team
from cdp.realtime import publish_customers_changed
from segments.services import segment_save
from tests.asyncrun import run
from tests.cdp.test_identity import send
from tests.cdp.test_realtime import session_headers

User = get_user_model()
OWN_ROLE = "Sales (own customers)"
SALES_PASSWORD = "a-long-sales-password-42"


def customer_named(source, *, user_id: str, name: str, phone: str) -> Customer:
    send(
        source,
        {"kind": "identify", "userId": user_id, "traits": {"name": name, "phone": phone, "city": "深圳"}},
    )
    return Customer.objects.get(name=name, merged_into=None)


@pytest.fixture
def admin_client(client_factory, admin_user):
    client = client_factory()
    client.force_login(admin_user)
    return client


@pytest.fixture
def own_sales(admin_client, server_source, client_factory):
    """Made as an admin makes it: the role from the Sales template seeing its own customers, a user
    holding it, and two customers of whom the admin gives one to that user."""
    response = admin_client.post(
        reverse("settings_role_create"), {"name": OWN_ROLE, "template": "Sales", "scope": "own"}
    )
    assert response.status_code == 302
    response = admin_client.post(
        reverse("settings_user_create"),
        {
            "full_name": "李雷",
            "username": "lilei",
            "email": "lilei@example.com",
            "role": OWN_ROLE,
            "password": SALES_PASSWORD,
        },
    )
    assert response.status_code == 302
    seller = User.objects.get(username="lilei")
    mine = customer_named(server_source, user_id="c-mine", name="王芳", phone="13800138001")
    theirs = customer_named(server_source, user_id="c-theirs", name="赵强", phone="13900139002")
    admin_client.post(reverse("customer_owner", args=[mine.pk]), {"owner": seller.pk})
    browser = client_factory()
    logged_in = browser.post(reverse("login"), {"username": "lilei", "password": SALES_PASSWORD})
    assert logged_in.status_code == 302
    return seller, browser, mine, theirs


def test_the_role_is_made_from_the_sales_template_and_the_user_holds_it(own_sales):
    seller, _browser, _mine, _theirs = own_sales
    role = Group.objects.get(name=OWN_ROLE)
    assert set(role.permissions.values_list("codename", flat=True)) == ROLE_CAPABILITIES["Sales"]
    assert role.staff_role.scope == "own"
    assert list(seller.groups.values_list("name", flat=True)) == [OWN_ROLE]


def test_a_seller_with_own_customers_sees_finds_and_opens_only_theirs(own_sales):
    _seller, browser, mine, theirs = own_sales
    listed = browser.get(reverse("customers")).content.decode()
    assert mine.name in listed and theirs.name not in listed

    assert mine.name in browser.get(reverse("customers"), {"q": "13800138001"}).content.decode()
    found = browser.get(reverse("customers"), {"q": "13900139002"}).content.decode()
    assert theirs.name not in found

    assert browser.get(reverse("customer", args=[mine.pk])).status_code == 200
    assert browser.get(reverse("customer", args=[theirs.pk])).status_code == 404
    assert browser.get(reverse("customer_timeline", args=[theirs.pk])).status_code == 404
    assert browser.post(reverse("customer_note", args=[theirs.pk]), {"text": "hi"}).status_code == 404


def test_the_api_answers_with_their_customers_only(own_sales):
    _seller, browser, mine, theirs = own_sales
    listed = browser.get(reverse("api_customers")).json()
    assert [row["id"] for row in listed["results"]] == [mine.pk]
    assert browser.get(reverse("api_customers"), {"q": "13900139002"}).json()["results"] == []
    assert browser.get(reverse("api_customer", args=[mine.pk])).status_code == 200
    assert browser.get(reverse("api_customer", args=[theirs.pk])).status_code == 404
    assert browser.get(reverse("api_customer_events", args=[theirs.pk])).status_code == 404


def test_an_upsert_cannot_reach_another_sellers_customer_and_a_new_one_is_theirs(own_sales):
    seller, browser, _mine, theirs = own_sales
    refused = browser.post(
        reverse("api_customers"),
        {"identities": {"phone": "13900139002"}, "traits": {"vip": True}},
        content_type="application/json",
    )
    assert refused.status_code == 403
    theirs.refresh_from_db()
    assert "vip" not in theirs.traits

    created = browser.post(
        reverse("api_customers"), {"identities": {"phone": "13700137003"}}, content_type="application/json"
    )
    assert created.status_code == 201
    assert Customer.objects.get(pk=created.json()["id"]).owner == seller


def test_the_segment_export_holds_their_customers_only(own_sales, admin_user):
    _seller, browser, mine, theirs = own_sales
    segment = segment_save(
        key="shenzhen",
        name="深圳",
        rule_data={"trait": "city", "op": "eq", "value": "深圳"},
        actor=admin_user,
    )
    assert segment.members.count() == 2
    response = browser.get(reverse("segment_export", args=[segment.pk]))
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert [int(row["customer_id"]) for row in rows] == [mine.pk]
    page = browser.get(reverse("segment", args=[segment.pk])).content.decode()
    assert mine.name in page and theirs.name not in page
    entry = AuditEntry.objects.get(action="segment.export")
    assert entry.details["members"] == 1


@pytest.mark.django_db(transaction=True)
def test_the_live_socket_tells_them_about_their_customers_only(own_sales, channel_layer, client):
    seller, _browser, mine, theirs = own_sales
    headers = session_headers(client, seller)

    async def listen():
        socket = WebsocketCommunicator(application, "/ws/customers/live/", headers=headers)
        connected, _code = await socket.connect(timeout=5)
        assert connected
        await sync_to_async(publish_customers_changed)([theirs.pk])
        nothing_about_theirs = await socket.receive_nothing(timeout=1)
        await sync_to_async(publish_customers_changed)([mine.pk, theirs.pk])
        heard = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
        return nothing_about_theirs, heard

    nothing_about_theirs, heard = run(listen())
    assert nothing_about_theirs
    assert heard == {"ids": [mine.pk]}


@pytest.mark.django_db(transaction=True)
def test_a_scope_change_closes_the_users_sockets_and_team_colleagues_customers_appear(
    own_sales,
    admin_client,
    channel_layer,
    client,
    server_source,
):
    seller, browser, _mine, theirs = own_sales
    colleague = User.objects.create_user(username="hanmei", password=SALES_PASSWORD)
    admin_client.post(reverse("customer_owner", args=[theirs.pk]), {"owner": colleague.pk})
    admin_client.post(reverse("settings_team_create"), {"name": "华南"})
    team = Team.objects.get(name="华南")
    for user in (seller, colleague):
        admin_client.post(
            reverse("settings_user", args=[user.pk]),
            {
                "full_name": user.username,
                "email": f"{user.username}@example.com",
                "role": OWN_ROLE,
                "team": team.pk,
            },
        )
    headers = session_headers(client, seller)
    role = Group.objects.get(name=OWN_ROLE)

    def widen_to_team():
        form = {"roles": [group.pk for group in Group.objects.all()]}
        for group in Group.objects.all():
            form[f"capabilities-{group.pk}"] = list(group.permissions.values_list("codename", flat=True))
            form[f"scope-{group.pk}"] = "team" if group == role else "all"
        return admin_client.post(reverse("settings_roles"), form).status_code

    async def open_then_widen():
        sockets = [
            WebsocketCommunicator(application, path, headers=headers)
            for path in ("/ws/notifications/", "/ws/customers/live/")
        ]
        for socket in sockets:
            connected, _code = await socket.connect(timeout=5)
            assert connected
        notifications, live = sockets
        status = await sync_to_async(widen_to_team)()
        closed = await live.receive_output(timeout=5)
        told = []  # the notification stream is the user's own: it stays open
        while not await notifications.receive_nothing(timeout=1):
            told.append(await notifications.receive_output())
        for socket in sockets:
            await socket.disconnect()
        return status, closed, told

    status, closed, told = run(open_then_widen())
    assert status == 302
    assert closed == {"type": "websocket.close", "code": 4403}
    assert [output for output in told if output["type"] == "websocket.close"] == []
    assert StaffRole.objects.get(group=role).scope == "team"
    assert browser.get(reverse("customer", args=[theirs.pk])).status_code == 200
    scope_change = AuditEntry.objects.get(action="role.scope", target_id=str(role.pk))
    assert scope_change.details == {"from": "own", "to": "team"}
    assert AuditEntry.objects.filter(action="user.team_change", target_id=str(seller.pk)).exists()
    assert "华南" in admin_client.get(reverse("settings_users")).content.decode()


def test_changes_to_roles_are_in_the_audit_log(own_sales, admin_client):
    seller, _browser, _mine, _theirs = own_sales
    role = Group.objects.get(name=OWN_ROLE)
    admin_client.post(reverse("settings_role", args=[role.pk]), {"name": "Sales South"})
    analyst_like = {
        "roles": [role.pk],
        f"capabilities-{role.pk}": ["view_customers"],
        f"scope-{role.pk}": "own",
    }
    admin_client.post(reverse("settings_roles"), analyst_like)
    actions = list(
        AuditEntry.objects.filter(target_type="auth.group", target_id=str(role.pk))
        .order_by("id")
        .values_list("action", "details")
    )
    assert actions[0][0] == "role.create"
    assert actions[1] == ("role.rename", {"from": OWN_ROLE, "to": "Sales South"})
    assert actions[2][0] == "role.capabilities"
    assert "view_pii" in actions[2][1]["removed"]
    assert AuditEntry.objects.get(action="user.create", target_id=str(seller.pk)).details == {
        "role": OWN_ROLE
    }
    history = admin_client.get(
        reverse("settings_role", args=[role.pk]), HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()
    assert "renamed the role from “Sales (own customers)” to “Sales South”" in history


def test_the_last_user_manager_is_kept(admin_client, admin_user, own_sales):
    admin_role = Group.objects.get(name="Admin")
    stripped = {"roles": [admin_role.pk], f"capabilities-{admin_role.pk}": ["view_customers"]}
    response = admin_client.post(reverse("settings_roles"), stripped, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 400
    assert "always keeps" in response.content.decode()
    assert admin_role.permissions.filter(codename="manage_users").exists()

    response = admin_client.post(
        reverse("settings_user", args=[admin_user.pk]),
        {"full_name": "Boss", "email": "boss@example.com", "role": OWN_ROLE},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert "last active admin" in str(response.context["form"].errors["role"])
    assert list(admin_user.groups.values_list("name", flat=True)) == ["Admin"]

    # A role of the admin's own making that manages users: moving the last admin into it is fine,
    # and then that role cannot lose the capability nor be deleted with its users put elsewhere.
    admin_client.post(
        reverse("settings_role_create"), {"name": "Deputy", "template": "Admin", "scope": "all"}
    )
    deputy = Group.objects.get(name="Deputy")
    admin_client.post(
        reverse("settings_user", args=[admin_user.pk]),
        {"full_name": "Boss", "email": "boss@example.com", "role": "Deputy"},
    )
    assert list(admin_user.groups.values_list("name", flat=True)) == ["Deputy"]
    without = {
        "roles": [deputy.pk],
        f"capabilities-{deputy.pk}": ["view_customers"],
        f"scope-{deputy.pk}": "all",
    }
    response = admin_client.post(reverse("settings_roles"), without, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 400
    assert "No active user would be left who can manage users" in response.content.decode()
    response = admin_client.post(
        reverse("settings_role_delete", args=[deputy.pk]),
        {"move_to": "Analyst"},
        HTTP_ACCEPT_LANGUAGE="en",
        follow=True,
    )
    assert "No active user would be left who can manage users" in response.content.decode()
    assert Group.objects.filter(name="Deputy").exists()


def test_deleting_a_role_in_use_asks_where_its_users_go(own_sales, admin_client):
    seller, _browser, _mine, _theirs = own_sales
    role = Group.objects.get(name=OWN_ROLE)
    page = admin_client.get(
        reverse("settings_role", args=[role.pk]), HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()
    assert "1 user holds this role; they get instead:" in page
    assert "data-confirm" in page

    refused = admin_client.post(
        reverse("settings_role_delete", args=[role.pk]), follow=True, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert "1 user holds this role: choose the role they get instead." in refused.content.decode()
    assert Group.objects.filter(pk=role.pk).exists()

    admin_client.post(reverse("settings_role_delete", args=[role.pk]), {"move_to": "Sales"})
    assert not Group.objects.filter(pk=role.pk).exists()
    assert list(seller.groups.values_list("name", flat=True)) == ["Sales"]
    assert AuditEntry.objects.get(action="role.delete").details == {"moved": 1, "to": "Sales"}


def test_built_in_roles_are_kept_by_the_role_sync(admin_client):
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType

    from cdp.access import sync_role_groups

    sales = Group.objects.get(name="Sales")
    edited = {"roles": [sales.pk], f"capabilities-{sales.pk}": ["view_customers"], f"scope-{sales.pk}": "own"}
    assert admin_client.post(reverse("settings_roles"), edited).status_code == 302
    sync_role_groups(Group, Permission, ContentType)  # as loading the demo does
    assert list(sales.permissions.values_list("codename", flat=True)) == ["view_customers"]
    assert StaffRole.objects.get(group=sales).scope == "own"


def test_messages_and_open_tasks_about_other_customers_stay_hidden(own_sales, time_machine):
    from connectors.accounts import account_create
    from connectors.services import message_enqueue
    from journeys.services import staff_task_create

    time_machine.move_to("2026-12-01T10:00:00+08:00", tick=False)
    _seller, browser, mine, theirs = own_sales
    account = account_create(
        kind="sandbox_sms", name="短信沙箱", values={"callback_secret": "s" * 20}, rate_per_second=1000
    )
    sent = {
        customer.pk: message_enqueue(
            account=account,
            customer=customer,
            idempotency_key=f"k{customer.pk}",
            body={"template_code": "S", "text": "hi"},
        )[0]
        for customer in (mine, theirs)
    }
    listing = browser.get(reverse("messages")).content.decode()
    assert f'data-message="{sent[mine.pk].pk}"' in listing
    assert f'data-message="{sent[theirs.pk].pk}"' not in listing
    assert browser.get(reverse("message", args=[sent[theirs.pk].pk])).status_code == 404
    assert browser.get(reverse("api_message", args=[sent[theirs.pk].pk])).status_code == 404
    by_customer = browser.get(reverse("messages"), {"customer": f"#{theirs.pk}"}).content.decode()
    assert f'data-message="{sent[theirs.pk].pk}"' not in by_customer

    from django.utils import timezone

    due = timezone.now() + timezone.timedelta(hours=4)
    staff_task_create(customer=mine, title="回访王芳", due_at=due)
    staff_task_create(customer=theirs, title="回访赵强", due_at=due)
    tasks = browser.get(reverse("my_tasks")).content.decode()
    assert "回访王芳" in tasks and "回访赵强" not in tasks


def test_a_user_with_several_roles_sees_as_the_widest_of_them(own_sales):
    from cdp.selectors import user_customer_scope

    seller, _browser, _mine, _theirs = own_sales
    assert user_customer_scope(User.objects.get(pk=seller.pk)) == "own"
    seller.groups.add(Group.objects.get(name="Analyst"))  # a built-in role: all customers
    assert user_customer_scope(User.objects.get(pk=seller.pk)) == "all"


@pytest.mark.django_db(transaction=True)
def test_a_demoted_users_open_sockets_are_closed(client, user_in_role, admin_user, channel_layer):
    """Finding 15: a demoted user's open websockets stayed in the customers-live group; only
    deactivation closed them. Now a change of role closes them too, and the pages reconnect."""
    seller = user_in_role("Sales", username="wei")
    admin_browser = type(client)()
    admin_browser.force_login(admin_user)
    headers = session_headers(client, seller)

    def demote():
        return admin_browser.post(
            reverse("settings_user", args=[seller.pk]),
            {"full_name": "魏", "email": "wei@example.com", "role": "Analyst"},
        ).status_code

    async def open_then_demote():
        socket = WebsocketCommunicator(application, "/ws/customers/live/", headers=headers)
        connected, _code = await socket.connect(timeout=5)
        assert connected
        status = await sync_to_async(demote)()
        closed = await socket.receive_output(timeout=5)
        await socket.disconnect()
        return status, closed

    status, closed = run(open_then_demote())
    assert status == 302
    assert closed == {"type": "websocket.close", "code": 4403}
