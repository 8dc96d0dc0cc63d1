from django.shortcuts import render

from cdp.access import capability_required
from journeys.examples import EXAMPLE_JOURNEY


@capability_required("view_journeys")
def journeys(request):
    return render(request, "journeys/index.html", {"example_graph": EXAMPLE_JOURNEY})
