"""The authenticated websocket: a signed-in page receives what any process publishes for its user."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator

from cdp.asgi import application
from cdp.realtime import notify_user


@pytest.fixture
def channel_layer(settings, redis_url):
    """The production layer (Redis); the quickstart's PostgreSQL layer is proven across processes
    by the browser tests, which run the real server."""
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [redis_url]}}
    }
    channel_layers.backends = {}
    yield
    channel_layers.backends = {}


def session_headers(client, user) -> list[tuple[bytes, bytes]]:
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    return [(b"cookie", cookie.encode()), (b"origin", b"http://testserver")]


async def receive_notification(headers, user_id: int) -> dict:
    communicator = WebsocketCommunicator(application, "/ws/notifications/", headers=headers)
    connected, _subprotocol = await communicator.connect(timeout=5)
    assert connected
    try:
        await sync_to_async(notify_user)(user_id=user_id, kind="role_changed", text="你的角色已变更")
        return await communicator.receive_json_from(timeout=5)
    finally:
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
def test_a_signed_in_user_receives_their_notifications(client, user_in_role, channel_layer):
    user = user_in_role("Sales")
    message = asyncio.run(receive_notification(session_headers(client, user), user.pk))
    assert message == {"kind": "role_changed", "text": "你的角色已变更", "data": {}}


@pytest.mark.django_db(transaction=True)
def test_anonymous_sockets_are_closed(channel_layer):
    async def connect_anonymously():
        communicator = WebsocketCommunicator(
            application, "/ws/notifications/", headers=[(b"origin", b"http://testserver")]
        )
        connected, code = await communicator.connect(timeout=5)
        return connected, code

    connected, code = asyncio.run(connect_anonymously())
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

    assert asyncio.run(connect()) is False


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

    closed = asyncio.run(open_then_deactivate())
    assert closed == [{"type": "websocket.close", "code": 4403}] * 2
