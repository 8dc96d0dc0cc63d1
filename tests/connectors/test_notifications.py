"""An account that pauses itself tells its admins on their open pages, in each page's language."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from cdp.asgi import application
from connectors.dispatcher import dispatch_account_run
from connectors.services import message_enqueue

pytestmark = pytest.mark.django_db(transaction=True)


def test_admins_hear_that_an_account_paused_itself(client, user_in_role, make_account, make_customer):
    admin = user_in_role("Admin", username="wangmin")
    client.force_login(admin)
    headers = [
        (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
        (b"origin", b"http://testserver"),
    ]
    account = make_account(name="阿里云短信", error_rate=1.0, error_code="isv.AMOUNT_NOT_ENOUGH")
    customer = make_customer()

    def send():
        message_enqueue(
            account=account, customer=customer, idempotency_key="k", body={"template_code": "S", "text": "x"}
        )
        dispatch_account_run(account_id=account.pk, budget_seconds=2)

    async def listen():
        communicator = WebsocketCommunicator(application, "/ws/notifications/", headers=headers)
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        try:
            await sync_to_async(send)()
            return await communicator.receive_json_from(timeout=10)
        finally:
            await communicator.disconnect()

    notification = asyncio.run(listen())
    assert notification["kind"] == "warning"
    assert notification["text"].startswith("渠道账号“阿里云短信”已暂停：isv.AMOUNT_NOT_ENOUGH")
    assert notification["data"] == {"account": account.pk}
