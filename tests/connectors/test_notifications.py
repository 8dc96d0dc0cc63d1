"""Admins hear on their open pages, in each page's language, when an account pauses itself and
when a dead dispatcher left messages in doubt."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from cdp.asgi import application
from connectors.dispatcher import dispatch_account_run, leases_expire
from connectors.models import Message
from connectors.services import message_enqueue
from tests.asyncrun import run

pytestmark = pytest.mark.django_db(transaction=True)


def admin_headers(client, user_in_role):
    client.force_login(user_in_role("Admin", username="wangmin"))
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    return [(b"cookie", cookie), (b"origin", b"http://testserver")]


async def receive_after(headers, action):
    communicator = WebsocketCommunicator(application, "/ws/notifications/", headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    try:
        await sync_to_async(action)()
        return await communicator.receive_json_from(timeout=10)
    finally:
        await communicator.disconnect()


def test_admins_hear_that_an_account_paused_itself(client, user_in_role, make_account, make_customer):
    headers = admin_headers(client, user_in_role)
    account = make_account(name="阿里云短信", error_rate=1.0, error_code="isv.AMOUNT_NOT_ENOUGH")
    customer = make_customer()

    def send():
        message_enqueue(account=account, customer=customer, idempotency_key="k", body={"template_code": "S"})
        dispatch_account_run(account_id=account.pk, budget_seconds=2)

    notification = run(receive_after(headers, send))
    assert notification["kind"] == "warning"
    assert notification["text"].startswith("渠道账号“阿里云短信”已暂停：isv.AMOUNT_NOT_ENOUGH")
    assert notification["data"] == {"account": account.pk}


def test_admins_hear_how_many_messages_a_dead_dispatcher_left_in_doubt(
    client, user_in_role, make_account, make_customer
):
    headers = admin_headers(client, user_in_role)
    account, customer = make_account(), make_customer()
    for key in ("a", "b"):
        message_enqueue(account=account, customer=customer, idempotency_key=key, body={"template_code": "S"})
    Message.objects.update(status="sending", claim="dead", lease_until="2026-01-01T00:00:00Z")
    notification = run(receive_after(headers, leases_expire))
    assert notification["text"] == "有 2 条消息待确认，请到“消息”中处理。"
    assert notification["data"] == {"in_doubt": 2}
