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


def test_one_username_tried_from_many_addresses_is_locked_at_the_higher_limit(
    client, user_in_role, password, settings
):
    """Distributed guessing: a few tries from each of many addresses, never five from one."""
    settings.LOGIN_USERNAME_FAILURE_LIMIT = 8  # above the per-address limit, as in production
    user_in_role("Admin", username="boss")
    for attempt in range(settings.LOGIN_USERNAME_FAILURE_LIMIT):
        client.post(
            reverse("login"), {"username": "boss", "password": "wrong"}, REMOTE_ADDR=f"10.0.{attempt}.9"
        )
    response = client.post(
        reverse("login"),
        {"username": "boss", "password": password},
        REMOTE_ADDR="10.9.9.9",
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()


def test_one_address_trying_many_usernames_is_locked(client, user_in_role, password, settings):
    """Password spraying: one common password on every username, from one address."""
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 8
    user_in_role("Sales", username="amy")
    for attempt in range(settings.LOGIN_ADDRESS_FAILURE_LIMIT):
        client.post(
            reverse("login"), {"username": f"user{attempt}", "password": "123456"}, REMOTE_ADDR="10.1.1.1"
        )
    assert (
        client.post(
            reverse("login"), {"username": "amy", "password": password}, REMOTE_ADDR="10.1.1.1"
        ).status_code
        == 429
    )
    # Others are not locked out by it.
    assert (
        client.post(
            reverse("login"), {"username": "amy", "password": password}, REMOTE_ADDR="10.2.2.2"
        ).status_code
        == 302
    )
