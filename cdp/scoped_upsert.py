"""The open API's customer upsert for a caller whose roles see only some customers: it may update
only customers it sees, and a customer it creates is its own."""

from __future__ import annotations

from django.db.models import Q
from django.utils.translation import gettext as _

from cdp.ingest import customer_upsert, customers_named_by
from cdp.models import Customer, CustomerScope
from cdp.selectors import customers_visible_to, user_customer_scope
from cdp.services import customer_assign_owner


class OutOfScope(Exception):
    pass


def customer_upsert_in_scope(
    *, user, identities: dict[str, str], traits: dict, message_id: str | None = None
) -> tuple[Customer, bool]:
    scoped = user_customer_scope(user) != CustomerScope.ALL
    if scoped:
        named = customers_named_by(identities=identities)
        visible = set(
            Customer.objects.filter(customers_visible_to(user), Q(pk__in=named)).values_list("pk", flat=True)
        )
        if named - visible:
            raise OutOfScope(_("These identifiers belong to a customer outside the customers you see."))
    customer, created = customer_upsert(identities=identities, traits=traits, message_id=message_id)
    if scoped and created and customer.owner_id is None:
        customer = customer_assign_owner(customer=customer, owner=user, actor=user)
    return customer, created
