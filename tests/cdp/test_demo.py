"""The demo company and its staff: one user per role, every one able to log in, loaded idempotently."""

from io import StringIO

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from cdp.demo import DEMO_USERS
from cdp.models import Organization

User = get_user_model()


def test_demo_data_is_idempotent_and_every_demo_user_logs_in(client_factory, db):
    call_command("demo_data", "--skip-customers", stdout=StringIO())
    call_command("demo_data", "--skip-customers", stdout=StringIO())
    assert Organization.objects.count() == 1
    assert User.objects.count() == len(DEMO_USERS)
    for demo in DEMO_USERS:
        client = client_factory()
        response = client.post(reverse("login"), {"username": demo.username, "password": demo.password})
        assert response.status_code == 302, demo.username
        assert client.get("/api/me/").json()["role"] == demo.role
    admin = client_factory()
    admin.force_login(User.objects.get(username="admin"))
    for user in User.objects.all():
        page = admin.get(reverse("settings_user", args=[user.pk]), HTTP_ACCEPT_LANGUAGE="en")
        assert page.status_code == 200
        assert "user.create" in page.content.decode()  # the history names who created the account


def test_demo_data_restores_a_changed_demo_password(client_factory, db):
    call_command("demo_data", "--skip-customers", stdout=StringIO())
    admin = User.objects.get(username="admin")
    admin.set_password("changed-by-someone")
    admin.save()
    call_command("demo_data", "--skip-customers", stdout=StringIO())
    assert (
        client_factory().post(reverse("login"), {"username": "admin", "password": "demo-admin"}).status_code
        == 302
    )
