"""Static segments: a fixed list of customers, uploaded as a CSV of customer ids, phones, emails or
user ids. An upload replaces the members (or adds to them) as a diff, like a dynamic segment's
refresh: one membership change with the size after it, and ``segment_entered`` /
``segment_exited`` events on the timelines of whoever entered or left. Rows that name no customer
come back in a report."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from cdp.identity import normalise_email, normalise_phone
from cdp.merge import customer_survivor
from cdp.models import Customer, Identity
from cdp.services import audit_record
from cdp.sqlvalues import id_array
from segments.graph import segment_node
from segments.models import Segment
from segments.rules import KEY_PATTERN
from segments.services import (
    _queue_events,  # the membership-change path dynamic segments take
    queue_dependents,
)

MAX_FILE_BYTES = 50 * 1024 * 1024
MATCH_CHUNK = 2_000
REPORT_ROWS = 200
ARRAY_CHUNK = 100_000

# Header names (lower-cased) that say what a column holds; the first one present on a row is used,
# most exact first.
COLUMNS = {
    "customer_id": "customer_id",
    "id": "customer_id",
    "客户id": "customer_id",
    "user_id": "user_id",
    "phone": "phone",
    "mobile": "phone",
    "手机": "phone",
    "手机号": "phone",
    "电话": "phone",
    "email": "email",
    "邮箱": "email",
}
KIND_ORDER = ("customer_id", "user_id", "phone", "email")


@dataclass
class UploadReport:
    rows: int = 0
    matched_rows: int = 0
    customers: int = 0
    entered: int = 0
    exited: int = 0
    unmatched_count: int = 0
    # (row number, value, reason), the first REPORT_ROWS of them.
    unmatched: list[tuple[int, str, str]] = field(default_factory=list)

    def reject(self, number: int, value: str, reason: str) -> None:
        self.unmatched_count += 1
        if len(self.unmatched) < REPORT_ROWS:
            self.unmatched.append((number, value, reason))


def upload_text(upload) -> str:
    if upload is None:
        raise ValidationError({"file": [_("Choose a CSV file.")]})
    if upload.size > MAX_FILE_BYTES:
        raise ValidationError({"file": [_("The file is larger than 50 MB; split it.")]})
    raw = upload.read()
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in China saves CSV in GBK by default
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ValidationError({"file": [_("The file is neither UTF-8 nor GBK text.")]})


def _guess(value: str) -> str | None:
    """What a bare value is, for files without a header: #12 or 12 an id, a@b.c an email, else a phone."""
    if value.startswith("#") and value[1:].isdigit():
        return "customer_id"
    if "@" in value:
        return "email"
    if normalise_phone(value):
        return "phone"
    if value.isdigit():
        return "customer_id"
    return None


def upload_rows(content: str) -> Iterator[tuple[int, str | None, str]]:
    """(row number, kind of identifier or None, value) for each non-empty row of the file."""
    reader = csv.reader(io.StringIO(content))
    header = next(reader, None)
    if header is None:
        return
    kinds = {index: COLUMNS.get(name.strip().lower()) for index, name in enumerate(header)}
    if not any(kinds.values()):  # no header: the first column holds the identifiers
        value = header[0].strip() if header else ""
        if value:
            yield 1, _guess(value), value
        for number, row in enumerate(reader, start=2):
            value = row[0].strip() if row else ""
            if value:
                yield number, _guess(value), value
        return
    columns = sorted(
        ((index, kind) for index, kind in kinds.items() if kind), key=lambda item: KIND_ORDER.index(item[1])
    )
    for number, row in enumerate(reader, start=2):
        found = next(
            (
                (kind, row[index].strip())
                for index, kind in columns
                if index < len(row) and row[index].strip()
            ),
            None,
        )
        if found:
            yield number, found[0], found[1]
        elif any(cell.strip() for cell in row):
            yield number, None, ",".join(row)


def _match(rows: list[tuple[int, str | None, str]], report: UploadReport, matched: set[int]) -> None:
    """Finds the customer of each row of one chunk, in one query per kind of identifier."""
    wanted: dict[str, dict[str, list[tuple[int, str]]]] = {kind: {} for kind in KIND_ORDER}
    for number, kind, value in rows:
        if kind is None:
            report.reject(number, value, _("not a customer id, phone or email"))
            continue
        if kind == "customer_id":
            key = value.removeprefix("#")
            if not key.isdigit():
                report.reject(number, value, _("not a customer id"))
                continue
        elif kind == "phone":
            key = normalise_phone(value)
            if key is None:
                report.reject(number, value, _("not a valid phone number"))
                continue
        elif kind == "email":
            key = normalise_email(value)
            if key is None:
                report.reject(number, value, _("not a valid email address"))
                continue
        else:
            key = value
        wanted[kind].setdefault(key, []).append((number, value))

    found: dict[str, dict[str, int]] = {kind: {} for kind in KIND_ORDER}
    if wanted["customer_id"]:
        ids = [int(key) for key in wanted["customer_id"]]
        for customer_id, merged_into in Customer.objects.filter(pk__in=ids).values_list(
            "pk", "merged_into_id"
        ):
            found["customer_id"][str(customer_id)] = (
                customer_survivor(customer_id) if merged_into else customer_id
            )
    for kind in ("user_id", "phone", "email"):
        if wanted[kind]:
            found[kind] = dict(
                Identity.objects.filter(type=kind, value__in=list(wanted[kind])).values_list(
                    "value", "customer_id"
                )
            )
    reasons = {
        "customer_id": _("no customer has this id"),
        "user_id": _("no customer has this user id"),
        "phone": _("no customer has this phone"),
        "email": _("no customer has this email"),
    }
    for kind, keys in wanted.items():
        for key, rows_of_key in keys.items():
            customer_id = found[kind].get(key)
            for number, value in rows_of_key:
                if customer_id is None:
                    report.reject(number, value, reasons[kind])
                else:
                    report.matched_rows += 1
                    matched.add(customer_id)


def upload_match(content: str) -> tuple[set[int], UploadReport]:
    """The customers a file names, and the report of its rows."""
    report, matched, chunk = UploadReport(), set(), []
    for row in upload_rows(content):
        report.rows += 1
        chunk.append(row)
        if len(chunk) >= MATCH_CHUNK:
            _match(chunk, report, matched)
            chunk = []
    _match(chunk, report, matched)
    report.unmatched.sort()
    report.customers = len(matched)
    return matched, report


def static_members_set(*, segment: Segment, customer_ids: set[int], replace: bool = True) -> tuple[int, int]:
    """Makes ``customer_ids`` the members (or adds them, without ``replace``) as a diff in the
    caller's transaction: (entered, exited). The change is recorded with the size after it and its
    timeline events queued at the commit, as for a dynamic segment's refresh."""
    now = timezone.now()
    ids = sorted(customer_ids)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS static_upload, static_change")
        cursor.execute("CREATE TEMP TABLE static_upload (id bigint PRIMARY KEY) ON COMMIT DROP")
        for start in range(0, len(ids), ARRAY_CHUNK):
            cursor.execute(
                "INSERT INTO static_upload SELECT unnest(%s::bigint[])",
                [id_array(ids[start : start + ARRAY_CHUNK])],
            )
        cursor.execute(
            """
            CREATE TEMP TABLE static_change ON COMMIT DROP AS
            SELECT upload.id AS customer_id, 'segment_entered'::text AS name
            FROM static_upload AS upload
            WHERE NOT EXISTS (SELECT 1 FROM segments_segmentmember AS m
                              WHERE m.segment_id = %s AND m.customer_id = upload.id)
            UNION ALL
            SELECT m.customer_id, 'segment_exited'
            FROM segments_segmentmember AS m
            WHERE %s AND m.segment_id = %s
              AND NOT EXISTS (SELECT 1 FROM static_upload AS upload WHERE upload.id = m.customer_id)
            """,
            [segment.pk, replace, segment.pk],
        )
        cursor.execute(
            """
            DELETE FROM segments_segmentmember AS m USING static_change AS change
            WHERE m.segment_id = %s AND m.customer_id = change.customer_id AND change.name = 'segment_exited'
            """,
            [segment.pk],
        )
        cursor.execute(
            """
            INSERT INTO segments_segmentmember (segment_id, customer_id, entered_at)
            SELECT %s, customer_id, %s FROM static_change WHERE name = 'segment_entered'
            """,
            [segment.pk, now],
        )
        cursor.execute(
            "SELECT count(*) FILTER (WHERE name = 'segment_entered'),"
            " count(*) FILTER (WHERE name = 'segment_exited') FROM static_change"
        )
        entered, exited = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM segments_segmentmember WHERE segment_id = %s", [segment.pk])
        member_count = cursor.fetchone()[0]
        if entered or exited:
            cursor.execute(
                """
                INSERT INTO segments_membershipchange (segment_id, changed_at, entered, exited,
                                                       member_count, events_written, events_done)
                SELECT %s, %s,
                       ARRAY(SELECT customer_id FROM static_change WHERE name = 'segment_entered' ORDER BY 1),
                       ARRAY(SELECT customer_id FROM static_change WHERE name = 'segment_exited' ORDER BY 1),
                       %s, 0, false
                RETURNING id
                """,
                [segment.pk, now, member_count],
            )
            change_id = cursor.fetchone()[0]
            transaction.on_commit(lambda: _queue_events(change_id), robust=True)
            # Segments, tags and stages built on this one follow it.
            transaction.on_commit(lambda: queue_dependents(segment_node(segment.key)), robust=True)
    Segment.objects.filter(pk=segment.pk).update(member_count=member_count, refreshed_at=now)
    return entered, exited


@transaction.atomic
def static_members_upload(*, segment: Segment, upload, actor, replace: bool = True) -> UploadReport:
    """Reads an uploaded CSV and sets the static segment's members from it."""
    if segment.kind != Segment.Kind.STATIC:
        raise ValidationError({"file": [_("Only a static segment takes a list of customers.")]})
    return _members_from(segment, upload_text(upload), file_name=upload.name, actor=actor, replace=replace)


def _members_from(segment: Segment, content: str, *, file_name: str, actor, replace: bool) -> UploadReport:
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    matched, report = upload_match(content)
    if report.rows == 0:
        raise ValidationError({"file": [_("The file has no rows.")]})
    report.entered, report.exited = static_members_set(segment=segment, customer_ids=matched, replace=replace)
    audit_record(
        actor=actor,
        action="segment.upload",
        target=segment,
        details={
            "file": (file_name or "")[:255],
            "replace": replace,
            "rows": report.rows,
            "unmatched": report.unmatched_count,
            "entered": report.entered,
            "exited": report.exited,
        },
    )
    return report


@transaction.atomic
def static_segment_create(
    *, key: str, name: str, description: str, upload, actor
) -> tuple[Segment, UploadReport]:
    """A new static segment holding the customers of an uploaded CSV; nothing is stored when the
    key, the name or the file is wrong (every problem is raised at once, by field)."""
    key, name = key.strip(), name.strip()
    errors: dict[str, list[str]] = {}
    if not KEY_PATTERN.match(key):
        errors["key"] = [_("Use lower-case letters, digits, - and _ (up to 100), e.g. lapsed-buyers.")]
    elif Segment.objects.filter(key=key).exists():
        errors["key"] = [_("A segment with this key exists already; choose another key.")]
    if not name:
        errors["name"] = [_("Give the segment a name.")]
    content = ""
    try:
        content = upload_text(upload)
    except ValidationError as error:
        errors.update(error.message_dict)
    if errors:
        raise ValidationError(errors)
    segment = Segment.objects.create(
        key=key,
        name=name,
        description=description.strip(),
        kind=Segment.Kind.STATIC,
        rule=None,
        created_by=actor,
    )
    audit_record(actor=actor, action="segment.create", target=segment, details={"kind": "static"})
    report = _members_from(segment, content, file_name=upload.name, actor=actor, replace=True)
    segment.refresh_from_db()
    return segment, report
