"""Every operation of the OpenAPI schema (/api/schema/) fuzzed with schemathesis, as an admin with an
API token: no answer is a server error, none takes 2 s or more, and answers match the schema."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cdp.services import api_token_rotate
from cdp.wsgi import application
from tests.answer_time import answered_in_time

# Enough to reach every parameter's edge cases, few enough for about a minute on a loaded 2-core machine.
EXAMPLES_PER_OPERATION = 6

schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
schema.app = application
schema.config.generation.update(max_examples=EXAMPLES_PER_OPERATION, database="none")


@pytest.fixture
def admin_token(admin_user):
    return api_token_rotate(user=admin_user).key


@pytest.fixture
def requests_inside_the_test_transaction():
    """The app is called through WSGI in this thread: Django must not close the test's connection
    at the end of each request (its test client does the same)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_no_operation_fails_or_stalls(case, admin_token, requests_inside_the_test_transaction):
    response = answered_in_time(
        lambda: case.call(headers={"Authorization": f"Token {admin_token}"}),
        f"{case.method} {case.formatted_path}",
    )
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )


def test_an_api_url_that_names_nothing_answers_in_json(client, admin_token):
    response = client.get("/api/journeys/-1/", HTTP_AUTHORIZATION=f"Token {admin_token}")
    assert response.status_code == 404
    assert list(response.json()) == ["detail"]
    assert client.get("/no-such-page/").headers["Content-Type"].startswith("text/html")


def test_reordering_no_stages_is_an_empty_order_not_an_error(client, admin_token):
    from segments.models import LifecycleStage

    LifecycleStage.objects.all().delete()
    response = client.post(
        "/api/stages/order/",
        {"keys": []},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {admin_token}",
    )
    assert (response.status_code, response.json()) == (200, [])


def test_a_nul_character_is_refused_naming_the_field(client, admin_token):
    """PostgreSQL text cannot hold it: it used to end in a server error."""
    token = {"HTTP_AUTHORIZATION": f"Token {admin_token}"}
    response = client.get("/api/customers/", {"role": "buy\x00er"}, **token)
    assert (response.status_code, list(response.json())) == (400, ["role"])
    body = '{"identities": {"user_id": "erp-7"}, "traits": {"company": "a\\u0000b"}}'
    response = client.post("/api/customers/", body, content_type="application/json", **token)
    assert (response.status_code, list(response.json())) == (400, ["traits.company"])


def test_a_nul_character_in_a_page_address_is_refused_naming_the_parameter(client, admin_user):
    client.force_login(admin_user)
    response = client.get("/customers/", {"q": "a\x00b"})
    assert response.status_code == 400
    assert response.content.decode().startswith("q: ")
