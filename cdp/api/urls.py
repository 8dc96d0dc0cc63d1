from django.urls import path

from cdp.api.customers import CustomerDetailView, CustomerEventsView, CustomerListView
from cdp.api.views import MeView, SchemaView

urlpatterns = [
    path("schema/", SchemaView.as_view(), name="schema"),
    path("me/", MeView.as_view(), name="api_me"),
    path("customers/", CustomerListView.as_view(), name="api_customers"),
    path("customers/<int:customer_id>/", CustomerDetailView.as_view(), name="api_customer"),
    path("customers/<int:customer_id>/events/", CustomerEventsView.as_view(), name="api_customer_events"),
]
