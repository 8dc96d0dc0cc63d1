import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
# Django must be set up before the consumers (and their models) are imported.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from cdp.dbconnections import executor_install  # noqa: E402
from cdp.gctune import collector_tune  # noqa: E402
from cdp.routing import websocket_urlpatterns  # noqa: E402
from cdp.tracking_asgi import with_tracking  # noqa: E402

router = ProtocolTypeRouter(
    {
        "http": with_tracking(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)


async def application(scope, receive, send):
    executor_install()  # before the first job reaches the loop's default executor
    await router(scope, receive, send)


collector_tune()
