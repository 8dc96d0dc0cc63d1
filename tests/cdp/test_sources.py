"""Admins manage data sources: create with a write key, rotate it, disable a source."""

import base64
import json

from django.core.management import call_command
from django.urls import reverse

from cdp.models import Source


def track(client, write_key):
    token = base64.b64encode(f"{write_key}:".encode()).decode()
    return client.post(
        "/v1/track",
        data=json.dumps({"userId": "u", "event": "Ping"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Basic {token}",
    )


def test_admin_creates_rotates_and_disables_a_source(client, admin_user):
    client.force_login(admin_user)
    client.post(reverse("settings_sources"), {"name": "小程序商城", "kind": "mini_program"})
    source = Source.objects.get()
    assert (source.kind, source.enabled) == ("mini_program", True)
    page = client.get(reverse("settings_sources")).content.decode()
    assert source.write_key in page
    assert track(client, source.write_key).status_code == 200

    old_key = source.write_key
    client.post(reverse("settings_source_rotate", args=[source.pk]))
    source.refresh_from_db()
    assert source.write_key != old_key
    assert track(client, old_key).status_code == 401
    assert track(client, source.write_key).status_code == 200

    client.post(reverse("settings_source_toggle", args=[source.pk]))
    assert track(client, source.write_key).status_code == 403
    client.post(reverse("settings_source_toggle", args=[source.pk]))
    assert track(client, source.write_key).status_code == 200


def test_bad_source_input_names_the_field(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        reverse("settings_sources"), {"name": " ", "kind": "fax"}, HTTP_ACCEPT_LANGUAGE="en"
    )
    html = response.content.decode()
    assert "Give the source a name." in html
    assert Source.objects.count() == 0


def test_the_command_prints_a_working_write_key(client, db, capsys):
    call_command("create_source", "--name", "官网", "--kind", "web")
    write_key = capsys.readouterr().out.strip()
    assert Source.objects.get(write_key=write_key).name == "官网"
    assert track(client, write_key).status_code == 200
