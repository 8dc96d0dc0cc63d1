"""The product's URLs and one more whose parameter the PII walk has no value for (test_pii_everywhere)."""

from django.urls import path

from cdp.urls import urlpatterns as product_urlpatterns
from cdp.views import reports

urlpatterns = [*product_urlpatterns, path("reports/<int:report_id>/", reports, name="report_detail")]
