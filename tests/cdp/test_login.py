"""Logging in and out; failed logins are logged and rate-limited."""

import logging

from axes.models import AccessAttempt, AccessFailureLog
from django.urls import reverse


def test_login_lands_on_the_page_asked_for_and_logout_ends_the_session(client, user_in_role, password):
    user_in_role("Marketer", username="lina")
    response = client.post(
        f"{reverse('login')}?next=/journeys/",
        {"username": "lina", "password": password, "next": "/journeys/"},
    )
    assert response["Location"] == "/journeys/"
    assert client.get("/journeys/").status_code == 200
    client.post(reverse("logout"))
    assert client.get("/journeys/").status_code == 302


def test_a_wrong_password_says_so_and_is_logged(client, user_in_role, caplog, settings):
    user_in_role("Sales", username="wei")
    with caplog.at_level(logging.WARNING):
        response = client.post(
            reverse("login"), {"username": "wei", "password": "wrong"}, HTTP_ACCEPT_LANGUAGE="en"
        )
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    failure = AccessFailureLog.objects.get()
    assert failure.username == "wei"
    assert any(record.name == "cdp.security" and "wei" in record.getMessage() for record in caplog.records)


def test_too_many_failures_lock_the_login_even_with_the_right_password(
    client, user_in_role, password, settings
):
    user_in_role("Sales", username="wei")
    for _attempt in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": "wei", "password": "wrong"})
    response = client.post(
        reverse("login"), {"username": "wei", "password": password}, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert client.get(reverse("customers")).status_code == 302
    assert AccessAttempt.objects.get(username="wei").failures_since_start >= settings.AXES_FAILURE_LIMIT


def test_the_lock_is_per_user_so_colleagues_can_still_log_in(client, user_in_role, password, settings):
    user_in_role("Sales", username="wei")
    user_in_role("Sales", username="amy")
    for _attempt in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": "wei", "password": "wrong"})
    assert client.post(reverse("login"), {"username": "amy", "password": password}).status_code == 302
