"""The registry: a sandbox for every channel kind, settings schemas with their secrets and problems."""

from connectors.protocol import Channel
from connectors.registry import kind_get, kinds


def test_every_channel_kind_has_a_sandbox_with_a_secret_callback_key():
    sandboxes = {kind.channel: kind for kind in kinds().values() if kind.sandbox}
    assert set(sandboxes) == set(Channel.LABELS)
    for kind in sandboxes.values():
        assert "callback_secret" in kind.secret_fields()


def test_settings_are_refused_with_the_field_and_the_problem():
    model, problems = kind_get("sandbox_sms").settings_validate(
        {"latency_ms": -5, "failure_rate": 2, "callback_secret": "short", "colour": "red"}
    )
    assert model is None
    assert set(problems) == {"latency_ms", "failure_rate", "callback_secret", "colour"}
    assert "greater than or equal to 0" in problems["latency_ms"]
    assert "at least 8 characters" in problems["callback_secret"]


def test_the_webhook_kind_wants_an_http_url_and_a_signing_secret():
    _model, problems = kind_get("webhook").settings_validate({"url": "ftp://x", "signing_secret": "s"})
    assert set(problems) == {"url", "signing_secret"}
    assert kind_get("webhook").secret_fields() == ["signing_secret"]
