from django.shortcuts import render
from django.utils.translation import gettext_lazy as _

from cdp.access import capability_required
from journeys.examples import EXAMPLE_JOURNEY


@capability_required("view_journeys")
def journeys(request):
    kind_labels = {"trigger": _("Trigger"), "flow": _("Flow"), "action": _("Action")}
    return render(
        request, "journeys/index.html", {"example_graph": EXAMPLE_JOURNEY, "kind_labels": kind_labels}
    )
