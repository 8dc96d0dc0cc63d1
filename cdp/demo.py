"""The demo company: a vertical e-commerce platform for low-voltage and smart-home equipment,
whose customers are suppliers and buyers. This module loads the company and its staff; its
customers and their events are in ``cdp.demo_customers`` (``demo_data`` loads both)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import transaction

from cdp.access import ROLE_ADMIN, ROLE_ANALYST, ROLE_MARKETER, ROLE_SALES, sync_role_groups
from cdp.models import CustomerRole
from cdp.services import audit_record, organization_ensure

User = get_user_model()

DEMO_COMPANY = "弱电优选 Ruodian Select"
DEMO_INDUSTRY = "B2B e-commerce: low-voltage and smart-home equipment"


# The case study's two kinds of customer, each with the figures its account managers watch.
DEMO_CUSTOMER_ROLES = (
    ("buyer", "采购商 Buyer", ["Order Completed", "Product Added", "Product Viewed"]),
    ("supplier", "供应商 Supplier", ["Product Listed", "Message Delivered"]),
)


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    full_name: str
    email: str
    role: str


DEMO_USERS = (
    DemoUser("admin", "demo-admin", "王敏", "admin@demo.ruodian.example", ROLE_ADMIN),
    DemoUser("marketer", "demo-marketer", "李娜", "marketing@demo.ruodian.example", ROLE_MARKETER),
    DemoUser("sales", "demo-sales", "张伟", "sales@demo.ruodian.example", ROLE_SALES),
    DemoUser("analyst", "demo-analyst", "陈静", "analyst@demo.ruodian.example", ROLE_ANALYST),
)


@transaction.atomic
def demo_load() -> list[DemoUser]:
    """Creates or restores the demo company and its staff; running it again changes nothing else."""
    organization_ensure(name=DEMO_COMPANY, industry=DEMO_INDUSTRY)
    sync_role_groups(Group, Permission, ContentType)
    for position, (key, label, metrics) in enumerate(DEMO_CUSTOMER_ROLES):
        CustomerRole.objects.update_or_create(
            key=key, defaults={"label": label, "key_metrics": metrics, "position": position}
        )
    for demo in DEMO_USERS:
        user, created = User.objects.get_or_create(
            username=demo.username,
            defaults={"email": demo.email, "first_name": demo.full_name},
        )
        if created or not user.check_password(demo.password):
            user.set_password(demo.password)
            user.is_active = True
            user.save()
        user.groups.set([Group.objects.get(name=demo.role)])
        if created:
            audit_record(
                actor=None, action="user.create", target=user, details={"role": demo.role, "demo": True}
            )
    return list(DEMO_USERS)
