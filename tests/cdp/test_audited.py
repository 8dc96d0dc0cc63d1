"""Review finding 16: who took personal data out, or put it in, is in the audit log: a segment's
export, an import and a customer written over the API."""

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from cdp.models import AuditEntry, Customer
from segments.services import segment_save
from tests.cdp.test_open_api import api  # noqa: F401 (fixture)


def test_a_segment_export_is_recorded_with_who_and_how_much(client, user_in_role, admin_user):
    Customer.objects.create(name="王强", traits={"city": "深圳"})
    segment = segment_save(
        key="all", name="全部", rule_data={"trait": "city", "op": "exists"}, actor=admin_user
    )
    sales = user_in_role("Sales")
    client.force_login(sales)
    response = client.get(reverse("segment_export", args=[segment.pk]))
    b"".join(response.streaming_content)
    entry = AuditEntry.objects.get(action="segment.export")
    assert (entry.actor, entry.target_id) == (sales, str(segment.pk))
    assert entry.details == {"members": 1, "full_contacts": True}


def test_an_import_and_an_api_upsert_are_recorded(client, admin_user, api, user_in_role):  # noqa: F811
    client.force_login(admin_user)
    upload = SimpleUploadedFile(
        "客户.csv", "phone,name\n13800138000,王强\n".encode(), content_type="text/csv"
    )
    client.post(reverse("imports"), {"kind": "customers", "file": upload})
    entry = AuditEntry.objects.get(action="import.start")
    assert (entry.actor, entry.details["rows"], entry.details["kind"]) == (admin_user, 1, "customers")

    marketer = user_in_role("Marketer")
    response = api(marketer).post(
        "/api/customers/",
        {"identities": {"phone": "13900139000"}, "traits": {}},
        content_type="application/json",
    )
    assert response.status_code == 201
    entry = AuditEntry.objects.get(action="customer.api_upsert")
    assert (entry.actor, entry.details) == (marketer, {"created": True, "identity_types": ["phone"]})
