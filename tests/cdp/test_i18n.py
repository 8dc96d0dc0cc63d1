"""Every user-facing string is translated (zh-hans and en); pages follow the browser and the switch."""

import shutil
import subprocess
import sys
from pathlib import Path

import polib
from django.urls import reverse

from tests.conftest import service_missing

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES"
SOURCES = ("cdp", "segments", "journeys", "connectors", "templates", "locale", "manage.py")


def test_the_chinese_catalogue_is_complete_and_compiled():
    catalogue = polib.pofile(str(CATALOGUE / "django.po"))
    assert catalogue.untranslated_entries() == []
    assert catalogue.fuzzy_entries() == []
    compiled = {(entry.msgctxt, entry.msgid): entry for entry in polib.mofile(str(CATALOGUE / "django.mo"))}
    for entry in catalogue:
        assert (entry.msgctxt, entry.msgid) in compiled, f"not compiled: {entry.msgid!r} (run make messages)"
        assert compiled[(entry.msgctxt, entry.msgid)].msgstr == entry.msgstr, entry.msgid


def test_every_string_in_code_and_templates_is_in_the_catalogue(tmp_path):
    if shutil.which("xgettext") is None:
        service_missing("GNU gettext (xgettext)")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / name)
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "--locale", "zh_Hans", "--no-obsolete"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=120,
    )
    extracted = polib.pofile(str(tmp_path / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"))
    missing = [entry.msgid for entry in extracted if not entry.translated() or entry.fuzzy]
    assert missing == [], "untranslated strings (run make messages and translate them)"


def test_pages_follow_the_browser_language(client, db):
    assert "登录" in client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9").content.decode()
    assert "Log in" in client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").content.decode()


def test_the_language_switch_overrides_the_browser(client, user_in_role):
    client.force_login(user_in_role("Marketer"))
    client.post(
        reverse("set_language"), {"language": "en", "next": "/journeys/"}, HTTP_ACCEPT_LANGUAGE="zh-CN"
    )
    html = client.get(reverse("journeys"), HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert "No journeys yet" in html
    client.post(reverse("set_language"), {"language": "zh-hans", "next": "/journeys/"})
    assert "暂无旅程" in client.get(reverse("journeys")).content.decode()
