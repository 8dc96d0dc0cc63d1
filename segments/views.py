from django.shortcuts import render

from cdp.access import capability_required


@capability_required("view_segments")
def segments(request):
    return render(request, "segments/index.html")


@capability_required("view_segments")
def tags(request):
    return render(request, "segments/tags.html")
