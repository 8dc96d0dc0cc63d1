"""Customers → Import: upload a CSV, watch its progress, download the rejected rows."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _

from cdp.access import capability_required
from cdp.imports import IDENTITY_COLUMNS, import_start
from cdp.models import ImportJob


@capability_required("manage_data")
def imports(request):
    errors = {}
    if request.method == "POST":
        upload = request.FILES.get("file")
        if upload is None:
            errors = {"file": [_("Choose a CSV file.")]}
        else:
            try:
                job = import_start(upload=upload, kind=request.POST.get("kind", ""), actor=request.user)
            except ValidationError as error:
                errors = error.message_dict
            else:
                messages.success(
                    request,
                    _("“%(name)s” is queued: %(rows)s rows.")
                    % {"name": job.file_name, "rows": job.total_rows},
                )
                return redirect("imports")
    jobs = ImportJob.objects.select_related("created_by").defer("content", "rejects")[:20]
    context = {
        "jobs": jobs,
        "errors": errors,
        "identity_columns": IDENTITY_COLUMNS,
        "running": any(job.status in (ImportJob.Status.QUEUED, ImportJob.Status.RUNNING) for job in jobs),
    }
    template = "cdp/_import_jobs.html" if request.htmx else "cdp/imports.html"
    return render(request, template, context)


@capability_required("manage_data")
def import_rejects(request, job_id: int):
    job = get_object_or_404(ImportJob, pk=job_id)
    response = HttpResponse("\ufeff" + job.rejects, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="rejected-rows-{job.pk}.csv"'
    return response
