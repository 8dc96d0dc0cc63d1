"""CSV imports: checked up front, loaded in the background with progress, rejected rows reported."""

import csv
import io

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from cdp.imports import import_run
from cdp.models import Customer, Event, ImportJob

CUSTOMERS_CSV = """phone,email,name,company,city
13800138000,wang@example.com,王强,安防科技,深圳
138-0013-8000,,王强,,
not-a-phone,,坏数据,,
,,无标识,,
13900001111,li@example.com,李娜,智能家居,杭州
"""


def upload(client, content: str, kind: str = "customers", encoding: str = "utf-8"):
    data = SimpleUploadedFile("客户.csv", content.encode(encoding), content_type="text/csv")
    return client.post(reverse("imports"), {"kind": kind, "file": data}, HTTP_ACCEPT_LANGUAGE="en")


def test_an_import_loads_good_rows_merges_duplicates_and_reports_bad_ones(client, admin_user):
    client.force_login(admin_user)
    assert upload(client, CUSTOMERS_CSV).status_code == 302
    job = ImportJob.objects.get()
    assert (job.status, job.total_rows) == ("queued", 5)

    import_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.processed_rows, job.accepted_rows, job.rejected_rows) == ("done", 5, 3, 2)
    assert Customer.objects.filter(merged_into=None).count() == 2  # the two 王强 rows share a phone
    wang = Customer.objects.get(identities__value="+8613800138000")
    assert wang.traits["company"] == "安防科技" and wang.name == "王强"

    report = client.get(reverse("import_rejects", args=[job.pk]))
    rows = list(csv.reader(io.StringIO(report.content.decode("utf-8-sig"))))
    assert rows[0][:2] == ["row", "reason"]
    assert [row[:2] for row in rows[1:]] == [
        ["4", "phone “not-a-phone” is not valid"],
        [
            "5",
            "no identifier (id_number, user_id, wechat_unionid, phone, email, "
            "wecom_external_userid, wechat_openid)",
        ],
    ]

    page = client.get(reverse("imports"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "5 / 5" in page and "download the report" in page

    import_run(job_id=job.pk)  # running a finished job again changes nothing
    assert Event.objects.count() == 3


def test_events_import_with_gbk_encoding_from_excel(client, admin_user):
    client.force_login(admin_user)
    content = (
        "user_id,event,timestamp,revenue\n"
        "erp-1,Order Completed,2026-11-11 20:30:00,899\n"
        "erp-1,Order Completed,yesterday,1\n"
    )
    assert upload(client, content, kind="events", encoding="gbk").status_code == 302
    job = ImportJob.objects.get()
    import_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.accepted_rows, job.rejected_rows) == (1, 1)
    order = Event.objects.get()
    assert order.name == "Order Completed" and str(order.amount) == "899.00"
    assert order.timestamp.isoformat().startswith("2026-11-11T12:30:00")  # 20:30 in Asia/Shanghai


def test_files_without_identifiers_or_rows_are_refused_with_the_reason(client, admin_user):
    client.force_login(admin_user)
    html = upload(client, "name,city\n王强,深圳\n").content.decode()
    assert "The first row needs at least one identifier column" in html
    html = upload(client, "phone\n").content.decode()
    assert "The file has a header but no rows." in html
    html = upload(client, "phone,event\n138,x\n", kind="events").content.decode()
    assert "An events file needs the columns event and timestamp." in html
    assert ImportJob.objects.count() == 0


def test_only_data_managers_import(client, user_in_role):
    client.force_login(user_in_role("Marketer"))
    assert client.get(reverse("imports")).status_code == 403


def test_a_tags_column_tags_each_rows_customer_and_unknown_tags_reject_the_row(client, admin_user):
    from segments.models import CustomerTag, Tag
    from segments.tags import tag_save

    vip = tag_save(key="vip", name="VIP", actor=None)
    hot_lead = tag_save(key="hot-lead", name="高意向", actor=None)
    Tag.objects.create(key="active", name="活跃", kind=Tag.Kind.DYNAMIC, rule={"event": "Product Viewed"})
    client.force_login(admin_user)
    upload(
        client,
        "phone,name,tags\n"
        "13800138000,王强,高意向; VIP\n"
        "13900001111,李娜,vip\n"
        "13700002222,张伟,\n"
        "13600003333,赵六,高意向|不存在\n"
        "13500004444,钱七,活跃\n",
    )
    job = ImportJob.objects.get()
    import_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.accepted_rows, job.rejected_rows) == (3, 2)

    def holders(tag):
        return set(CustomerTag.objects.filter(tag=tag).values_list("customer__identities__value", flat=True))

    assert holders(vip) == {"+8613800138000", "+8613900001111"}
    assert holders(hot_lead) == {"+8613800138000"}
    assert CustomerTag.objects.filter(origin="import").count() == 3
    assert "tags" not in Customer.objects.get(identities__value="+8613800138000").traits
    assert not Customer.objects.filter(identities__value="+8613600003333").exists()

    report = client.get(reverse("import_rejects", args=[job.pk]))
    rows = list(csv.reader(io.StringIO(report.content.decode("utf-8-sig"))))
    assert [row[:2] for row in rows[1:]] == [
        ["5", "there is no tag “不存在” (create it on the Tags page first)"],
        ["6", "tag “活跃” is dynamic: its rule decides who holds it"],
    ]


def test_the_uploaded_file_is_not_kept_and_the_report_masks_and_neutralises_cells(client, admin_user):
    """Review findings 5 and 13: the CSV (phones, ID numbers) is cleared once loaded; the report of
    rejected rows shows no phone, email or ID number in full and no cell a spreadsheet would run."""
    client.force_login(admin_user)
    content = (
        "phone,email,id_number,name,note\n"
        "13800138000,wang@example.com,,王强,\n"
        'not-a-phone,zhao.min@example.com,11010519491231002X,=HYPERLINK("http://x"),请回电 13912345678\n'
    )
    upload(client, content)
    job = ImportJob.objects.get()
    import_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.rejected_rows, job.content) == ("done", 1, "")

    report = client.get(reverse("import_rejects", args=[job.pk])).content.decode("utf-8-sig")
    (row,) = list(csv.DictReader(io.StringIO(report)))
    assert row["email"] == "z****@example.com"
    assert row["id_number"] == "••••"
    assert row["note"] == "请回电 139****5678"
    assert row["name"] == '\'=HYPERLINK("http://x")'
    for secret in ("zhao.min", "11010519491231002X", "13912345678"):
        assert secret not in report
