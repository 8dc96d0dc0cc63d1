"""CSV imports of customers or events: checked up front, loaded in the background through the same
ingest path as tracked events, with progress and a downloadable report of rejected rows."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections import defaultdict

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from cdp.csvexport import SafeWriter
from cdp.identity import IDENTITY_TYPES, normalise
from cdp.ingest import batches_process, inbox_store
from cdp.merge import customer_survivor
from cdp.models import Customer, Event, ImportJob, Source
from cdp.redaction import redact
from cdp.services import audit_record, internal_source
from segments.models import CustomerTag, Tag
from segments.tags import customers_tag

MAX_FILE_BYTES = 50 * 1024 * 1024
CHUNK_ROWS = 500
IMPORT_SOURCE_NAME = "CSV import"
IDENTITY_COLUMNS = tuple(name for name in IDENTITY_TYPES if name != "anonymous_id")
# A customers file may name static tags in this column, by key or name, several in one cell.
TAGS_COLUMN = "tags"
TAG_SEPARATORS = re.compile(r"[;|,，、；]")
NOT_TRAITS = ("event", "timestamp", TAGS_COLUMN)


def _rows(content: str) -> csv.DictReader:
    return csv.DictReader(io.StringIO(content))


def import_start(*, upload, kind: str, actor) -> ImportJob:
    """Checks the file's size, encoding and columns, then queues the job.

    Raises ValidationError naming the problem; nothing is stored then."""
    if kind not in ImportJob.Kind.values:
        raise ValidationError({"kind": _("Choose customers or events.")})
    if upload.size > MAX_FILE_BYTES:
        raise ValidationError({"file": _("The file is larger than 50 MB; split it.")})
    raw = upload.read()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            content = raw.decode("gb18030")  # Excel in China saves CSV in GBK by default
        except UnicodeDecodeError:
            raise ValidationError({"file": _("The file is neither UTF-8 nor GBK text.")}) from None
    header = next(csv.reader(io.StringIO(content)), [])
    columns = {column.strip() for column in header}
    if not columns & set(IDENTITY_COLUMNS):
        raise ValidationError(
            {
                "file": _("The first row needs at least one identifier column: %(columns)s.")
                % {"columns": ", ".join(IDENTITY_COLUMNS)}
            }
        )
    if kind == ImportJob.Kind.EVENTS and not {"event", "timestamp"} <= columns:
        raise ValidationError({"file": _("An events file needs the columns event and timestamp.")})
    total = sum(1 for _row in _rows(content))
    if total == 0:
        raise ValidationError({"file": _("The file has a header but no rows.")})
    with transaction.atomic():
        job = ImportJob.objects.create(
            kind=kind,
            file_name=upload.name[:255],
            language=translation.get_language() or "zh-hans",
            content=content,
            total_rows=total,
            created_by=actor,
        )
        audit_record(
            actor=actor,
            action="import.start",
            target=job,
            details={"kind": kind, "rows": total, "file": job.file_name},
        )
        from cdp.tasks import import_run

        transaction.on_commit(lambda: import_run.delay(job.pk), robust=True)
    return job


def _message(job: ImportJob, number: int, row: dict) -> tuple[dict | None, str]:
    """The ingest message for one row, or None and the reason it is rejected."""
    row = {key.strip(): (value or "").strip() for key, value in row.items() if key}
    identities = {column: row[column] for column in IDENTITY_COLUMNS if row.get(column)}
    if not identities:
        return None, _("no identifier (%(columns)s)") % {"columns": ", ".join(IDENTITY_COLUMNS)}
    for column, value in identities.items():
        if normalise(column, value) is None:
            return None, _("%(column)s “%(value)s” is not valid") % {"column": column, "value": value}
    # A customers file's tags column names tags (see _tags_named); an events file's is a property.
    skipped = NOT_TRAITS if job.kind == ImportJob.Kind.CUSTOMERS else ("event", "timestamp")
    traits = {
        key: value for key, value in row.items() if key not in identities and value and key not in skipped
    }
    message = {
        "messageId": f"import-{job.pk}-{number}",
        "userId": identities.get("user_id"),
        "anonymousId": None,
        "previousId": None,
        "context": {"externalIds": [{"type": column, "id": value} for column, value in identities.items()]},
    }
    if job.kind == ImportJob.Kind.CUSTOMERS:
        return {
            **message,
            "kind": "identify",
            "name": "identify",
            "timestamp": timezone.now().isoformat(),
            "properties": {},
            "traits": traits,
        }, ""
    if not row.get("event"):
        return None, _("the event column is empty")
    try:
        moment = dt.datetime.fromisoformat(row.get("timestamp", ""))
    except ValueError:
        return None, _("timestamp “%(value)s” is not a date-time like 2026-11-11 20:30:00") % {
            "value": row.get("timestamp")
        }
    if moment.tzinfo is None:
        moment = timezone.make_aware(moment)
    return {
        **message,
        "kind": "track",
        "name": row["event"][:200],
        "timestamp": moment.isoformat(),
        "properties": traits,
        "traits": {},
    }, ""


def _tags_by_name() -> dict[str, Tag]:
    """Every tag by key and by name, lower-cased (a key wins when a name equals another tag's key)."""
    found: dict[str, Tag] = {}
    tags = list(Tag.objects.all())
    for tag in tags:
        found.setdefault(tag.name.strip().lower(), tag)
    for tag in tags:
        found[tag.key.lower()] = tag
    return found


def _tags_named(cell: str, known: dict[str, Tag]) -> tuple[list[Tag], str]:
    """The static tags a row's tags cell names, or the reason the row is rejected."""
    tags = []
    for name in filter(None, (part.strip() for part in TAG_SEPARATORS.split(cell or ""))):
        tag = known.get(name.lower())
        if tag is None:
            return [], _("there is no tag “%(name)s” (create it on the Tags page first)") % {"name": name}
        if tag.kind != Tag.Kind.STATIC:
            return [], _("tag “%(name)s” is dynamic: its rule decides who holds it") % {"name": name}
        if tag not in tags:
            tags.append(tag)
    return tags, ""


def _tags_apply(job: ImportJob, source: Source, tags_of: dict[str, list[Tag]]) -> None:
    """Puts each imported row's tags on the customer its row ended up as."""
    if not tags_of:
        return
    owners = dict(
        Event.objects.filter(source=source, message_id__in=list(tags_of)).values_list(
            "message_id", "customer_id"
        )
    )
    # Written moments ago under their survivor; one that another worker merged away since is rare.
    merged = dict(
        Customer.objects.filter(pk__in=set(owners.values()), merged_into__isnull=False).values_list(
            "pk", "merged_into_id"
        )
    )
    holders: dict[Tag, set[int]] = defaultdict(set)
    for message_id, tags in tags_of.items():
        if message_id in owners:
            owner = owners[message_id]
            owner = customer_survivor(owner) if owner in merged else owner
            for tag in tags:
                holders[tag].add(owner)
    for tag, customer_ids in holders.items():
        customers_tag(
            customer_ids=sorted(customer_ids), tag=tag, actor=job.created_by, origin=CustomerTag.Origin.IMPORT
        )


def import_run(*, job_id: int) -> ImportJob:
    """Loads the job chunk by chunk, saving progress after each; rerunning it stores nothing twice."""
    job = ImportJob.objects.get(pk=job_id)
    if job.status == ImportJob.Status.DONE:
        return job
    with translation.override(job.language):
        return _run(job)


def _run(job: ImportJob) -> ImportJob:
    source = internal_source(name=IMPORT_SOURCE_NAME, kind=Source.Kind.IMPORT)
    job.status, job.processed_rows, job.accepted_rows, job.rejected_rows = ImportJob.Status.RUNNING, 0, 0, 0
    job.save(update_fields=["status", "processed_rows", "accepted_rows", "rejected_rows"])
    rejects = io.StringIO()
    report = SafeWriter(rejects)
    reader = _rows(job.content)
    report.writerow(["row", "reason", *(reader.fieldnames or [])])
    chunk: list[dict] = []
    tags_of: dict[str, list[Tag]] = {}  # messageId -> the tags its row names
    known_tags = _tags_by_name() if job.kind == ImportJob.Kind.CUSTOMERS else {}

    def flush() -> None:
        if chunk:
            batch = inbox_store(source=source, events=list(chunk))
            batches_process(batch_ids=[batch.pk])
            _tags_apply(job, source, tags_of)
            job.accepted_rows += len(chunk)
            chunk.clear()
            tags_of.clear()
        ImportJob.objects.filter(pk=job.pk).update(
            processed_rows=job.processed_rows,
            accepted_rows=job.accepted_rows,
            rejected_rows=job.rejected_rows,
        )

    try:
        for number, row in enumerate(reader, start=2):  # row 1 is the header
            message, reason = _message(job, number, row)
            tags: list[Tag] = []
            if message is not None and job.kind == ImportJob.Kind.CUSTOMERS:
                cell = next((value for key, value in row.items() if key and key.strip() == TAGS_COLUMN), "")
                tags, reason = _tags_named(cell or "", known_tags)
                message = None if reason else message
            job.processed_rows += 1
            if message is None:
                job.rejected_rows += 1
                # Masked: the uploader finds the row by its number in their own file.
                report.writerow(
                    [
                        number,
                        redact(reason, show_pii=False),
                        *(redact(value, show_pii=False) for value in row.values()),
                    ]
                )
            else:
                chunk.append(message)
                if tags:
                    tags_of[message["messageId"]] = tags
            if len(chunk) >= CHUNK_ROWS or job.processed_rows % CHUNK_ROWS == 0:
                flush()
        flush()
    except Exception as exc:
        job.status, job.error = ImportJob.Status.FAILED, f"{type(exc).__name__}: {exc}"[:2000]
        job.save(update_fields=["status", "error"])
        raise
    job.status, job.rejects, job.finished_at = ImportJob.Status.DONE, rejects.getvalue(), timezone.now()
    job.content = ""  # the uploaded file, phones and ID numbers included, is not kept once loaded
    job.save(
        update_fields=[
            "status",
            "rejects",
            "finished_at",
            "processed_rows",
            "accepted_rows",
            "rejected_rows",
            "content",
        ]
    )
    return job
