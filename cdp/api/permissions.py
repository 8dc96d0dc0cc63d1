from rest_framework.permissions import BasePermission

from cdp.access import user_can


class HasCapability(BasePermission):
    """The API's side of the same check: the view's ``required_capability`` (per method if a dict)."""

    def has_permission(self, request, view) -> bool:
        capability = getattr(view, "required_capability", None)
        if isinstance(capability, dict):
            capability = capability.get(request.method, capability.get("*"))
        if capability is None:
            return False
        return user_can(request.user, capability)
