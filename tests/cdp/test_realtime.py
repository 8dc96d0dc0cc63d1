"""The authenticated websocket: a signed-in page receives what any process publishes for its user."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import transaction
from django.utils import translation

from cdp.asgi import application
from cdp.realtime import notify_user
from tests.asyncrun import run


def session_headers(client, user) -> list[tuple[bytes, bytes]]:
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    return [(b"cookie", cookie.encode()), (b"origin", b"http://testserver")]


async def receive_notification(headers, user_id: int, send=None) -> dict:
    communicator = WebsocketCommunicator(application, "/ws/notifications/", headers=headers)
    connected, _subprotocol = await communicator.connect(timeout=5)
    assert connected
    try:
        await sync_to_async(
            send or (lambda: notify_user(user_id=user_id, kind="note", message="Changes saved."))
        )()
        return await communicator.receive_json_from(timeout=5)
    finally:
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
def test_a_signed_in_user_receives_their_notifications(client, user_in_role, channel_layer):
    user = user_in_role("Sales")
    message = run(receive_notification(session_headers(client, user), user.pk))
    assert message == {"kind": "note", "text": "修改已保存。", "data": {}}


@pytest.mark.django_db(transaction=True)
def test_each_page_reads_a_notification_in_its_own_language_not_the_senders(
    client, user_in_role, admin_user, channel_layer
):
    from cdp.services import user_update

    user = user_in_role("Sales", username="wang")
    headers = session_headers(client, user)

    def change_role_to(role):
        def change():
            with translation.override("zh-hans"), transaction.atomic():  # the admin works in Chinese
                user_update(actor=admin_user, user=user, email=user.email, full_name="王", role=role)

        return change

    english_browser = [*headers, (b"accept-language", b"en-US,en;q=0.9")]
    message = run(receive_notification(english_browser, user.pk, send=change_role_to("Marketer")))
    assert message["text"] == "Your role is now Marketer."
    # the language picked on the page wins over the browser's
    cookie = dict(headers)[b"cookie"] + b"; django_language=zh-hans"
    picked_chinese = [(b"cookie", cookie), (b"origin", b"http://testserver"), (b"accept-language", b"en")]
    message = run(receive_notification(picked_chinese, user.pk, send=change_role_to("Analyst")))
    assert message["text"] == "你的角色已变更为分析师。"


@pytest.mark.django_db(transaction=True)
def test_anonymous_sockets_are_closed(channel_layer):
    async def connect_anonymously():
        communicator = WebsocketCommunicator(
            application, "/ws/notifications/", headers=[(b"origin", b"http://testserver")]
        )
        connected, code = await communicator.connect(timeout=5)
        return connected, code

    connected, code = run(connect_anonymously())
    assert connected is False
    assert code == 4401


@pytest.mark.django_db(transaction=True)
def test_sockets_from_a_foreign_origin_are_refused(client, user_in_role, channel_layer):
    headers = [
        (name, b"https://evil.example" if name == b"origin" else value)
        for name, value in session_headers(client, user_in_role("Sales"))
    ]

    async def connect():
        communicator = WebsocketCommunicator(application, "/ws/notifications/", headers=headers)
        connected, _code = await communicator.connect(timeout=5)
        return connected

    assert run(connect()) is False


@pytest.mark.django_db(transaction=True)
def test_deactivating_a_user_closes_their_open_pages_sockets(client, user_in_role, admin_user, channel_layer):
    from cdp.services import user_set_active

    user = user_in_role("Sales")
    headers = session_headers(client, user)

    async def open_then_deactivate():
        sockets = [
            WebsocketCommunicator(application, path, headers=headers)
            for path in ("/ws/notifications/", "/ws/customers/live/")
        ]
        for socket in sockets:
            connected, _code = await socket.connect(timeout=5)
            assert connected
        await sync_to_async(user_set_active)(actor=admin_user, user=user, active=False)
        closed = [await socket.receive_output(timeout=5) for socket in sockets]
        for socket in sockets:
            await socket.disconnect()
        return closed

    closed = run(open_then_deactivate())
    assert closed == [{"type": "websocket.close", "code": 4403}] * 2
