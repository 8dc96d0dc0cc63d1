"""Login limits beyond one username from one address (django-axes counts those): a username tried
from many addresses (distributed guessing) and an address trying many usernames (password
spraying) are locked too, at higher limits, over the same window."""

from __future__ import annotations

import datetime as dt

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessFailureLog
from django.conf import settings
from django.utils import timezone


class LoginLimitsHandler(AxesDatabaseHandler):
    def is_locked(self, request, credentials: dict | None = None) -> bool:
        if super().is_locked(request, credentials):
            return True
        if not settings.AXES_LOCK_OUT_AT_FAILURE:
            return False
        since = timezone.now() - dt.timedelta(minutes=settings.LOGIN_LOCKOUT_MINUTES)
        failures = AccessFailureLog.objects.filter(attempt_time__gte=since)
        username = get_client_username(request, credentials)
        address = getattr(request, "axes_ip_address", None)
        locked = bool(
            username and failures.filter(username=username).count() >= settings.LOGIN_USERNAME_FAILURE_LIMIT
        ) or bool(
            address and failures.filter(ip_address=address).count() >= settings.LOGIN_ADDRESS_FAILURE_LIMIT
        )
        if locked:
            # What axes sets for its own locks: the attempt is not counted again, and the middleware
            # answers with the lockout page (429).
            request.axes_locked_out = True
        return locked
