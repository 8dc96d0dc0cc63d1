from django.urls import path

from cdp.api.customers import CustomerDetailView, CustomerEventsView, CustomerListView
from cdp.api.views import MeView, SchemaView
from segments.api import SegmentListView, SegmentPreviewView, SegmentRefreshView

urlpatterns = [
    path("schema/", SchemaView.as_view(), name="schema"),
    path("me/", MeView.as_view(), name="api_me"),
    path("customers/", CustomerListView.as_view(), name="api_customers"),
    path("customers/<int:customer_id>/", CustomerDetailView.as_view(), name="api_customer"),
    path("customers/<int:customer_id>/events/", CustomerEventsView.as_view(), name="api_customer_events"),
    path("segments/", SegmentListView.as_view(), name="api_segments"),
    path("segments/preview/", SegmentPreviewView.as_view(), name="api_segment_preview"),
    path("segments/<int:segment_id>/refresh/", SegmentRefreshView.as_view(), name="api_segment_refresh"),
]
