from django.shortcuts import render

from cdp.access import capability_required


@capability_required("view_messages")
def messages_index(request):
    return render(request, "connectors/messages.html")


@capability_required("manage_channels")
def channels(request):
    return render(request, "connectors/channels.html")
