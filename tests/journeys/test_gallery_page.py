"""The templates gallery page: every ready journey drawn with what it needs, and a marketer starting a
draft from one that opens on the canvas."""

from __future__ import annotations

import re

import pytest

from journeys.gallery import TEMPLATES
from journeys.models import Journey
from segments.models import Tag

pytestmark = pytest.mark.django_db


def text(response) -> str:
    return response.content.decode()


def test_the_gallery_draws_every_template_and_a_marketer_starts_from_one(client, user_in_role):
    client.force_login(user_in_role("Marketer"))
    assert 'href="/journeys/templates/"' in text(client.get("/journeys/"))
    page = text(client.get("/journeys/templates/"))
    shown = re.findall(r'<section class="card gallery__card" data-template="([^"]+)">', page)
    assert sorted(shown) == sorted(TEMPLATES) and len(shown) >= 12
    assert page.count('data-island="journey-preview"') == len(TEMPLATES)
    assert "直播报名跟进" in page  # names in the page's language

    response = client.post("/journeys/templates/live-stream-signup/use/", follow=True)
    journey = Journey.objects.get()
    assert response.redirect_chain[-1][0] == f"/journeys/{journey.pk}/edit/"
    assert journey.status == "draft" and len(journey.draft_graph["nodes"]) >= 5
    assert Tag.objects.filter(key="live-signup").exists()  # the tags it sets are created
    assert "live-signup" in text(response)  # and the marketer is told which
    assert client.post("/journeys/templates/no-such-template/use/").status_code == 404


def test_analysts_browse_the_gallery_but_start_nothing(client, user_in_role):
    client.force_login(user_in_role("Analyst"))
    page = text(client.get("/journeys/templates/"))
    assert "gallery__card" in page and "/use/" not in page
    assert client.post("/journeys/templates/live-stream-signup/use/").status_code == 403
    assert not Journey.objects.exists()
