import logging

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import post_delete, post_save
from django.dispatch import Signal, receiver

from cdp.models import Source

security_log = logging.getLogger("cdp.security")

# Sent after a commit that changed what customers did or hold (new events, tags), with their ids
# (``customer_ids``): rules over them (segments, tags, stages) are evaluated again.
customers_changed = Signal()
# Sent inside the transaction of a merge (``pairs``: a list of (survivor id, merged id), several
# merged at once) and of its undoing (``survivor_id``, ``merged_id``): what other apps keep per
# customer (tags, scores, stages) follows the events.
customers_merged = Signal()
customers_unmerged = Signal()


def _client_address(request) -> str:
    return request.META.get("REMOTE_ADDR", "?") if request is not None else "?"


@receiver(user_login_failed)
def log_failed_login(sender, credentials, request=None, **kwargs):
    security_log.warning(
        "failed login for username=%r from %s", credentials.get("username"), _client_address(request)
    )


@receiver(user_logged_in)
def log_login(sender, request, user, **kwargs):
    security_log.info("login username=%r from %s", user.get_username(), _client_address(request))


@receiver([post_save, post_delete], sender=Source)
def forget_cached_sources(sender, **kwargs):
    """Rotated keys and disabled sources take effect at once in this process (others within seconds)."""
    from cdp.tracking import sources_forget

    sources_forget()
