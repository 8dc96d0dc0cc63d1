from cdp.navigation import sections_for
from cdp.selectors import organization_get, user_role


def shell(request) -> dict:
    """What the base layout needs on every page: navigation, organisation, the user's role."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "nav_sections": sections_for(user, request.path),
        "organization": organization_get(),
        "user_role": user_role(user),
    }
