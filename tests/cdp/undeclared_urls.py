"""A URL configuration with one view that forgot to declare a capability (for test_access)."""

from django.http import HttpResponse
from django.urls import path

from cdp.urls import urlpatterns as product_urlpatterns


def forgot_to_declare(request):
    return HttpResponse("secret")


urlpatterns = [path("undeclared/", forgot_to_declare), *product_urlpatterns]
