"""Review finding 15: pages run only our own script files (a Content-Security-Policy with no inline
script), wired by data attributes; a sign-in lasts a working day."""

import re
from pathlib import Path

from django.urls import reverse

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)


def test_every_page_says_that_only_our_own_scripts_run(client, admin_user):
    client.force_login(admin_user)
    response = client.get(reverse("customers"))
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response["Content-Security-Policy"].split(";")
        if directive
    )
    assert policy["script-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in policy["script-src"] and "unsafe-eval" not in policy["script-src"]


def test_no_template_carries_an_inline_handler_or_script():
    found = []
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        found += [f"{path.name}: {match.group().strip()}" for match in INLINE_HANDLER.finditer(text)]
        for script in re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", text):
            found.append(f"{path.name}: {script}")
    assert found == []


def test_a_sign_in_lasts_a_working_day_and_ends_with_the_browser(client, user_in_role, password):
    user_in_role("Sales", username="wei")
    response = client.post(reverse("login"), {"username": "wei", "password": password})
    cookie = response.cookies["sessionid"]
    assert not cookie["max-age"] and not cookie["expires"]  # gone when the browser closes
    assert client.session.get_expiry_age() == 12 * 3600
