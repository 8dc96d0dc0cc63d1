"""Configuration from the environment: bad values are named, production refuses to start half-configured."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cdp.config import ConfigurationError, Env
from tests.processes import current_database_url

ROOT = Path(__file__).resolve().parents[2]
STRONG_KEY = "k3y-" + "x9Q2mZ7vT1rB8nL4pW6s" * 3
PRODUCTION_ENV = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": STRONG_KEY,
    "ALLOWED_HOSTS": "cdp.example.com",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "IDENTITY_HASH_KEY": "identity-" + "Zq8Kp3Lr7Wm2Xn5Tv9Bc" * 2,
    # Two keys, newest first, as during a rotation.
    "PII_ENCRYPTION_KEYS": "dGhlLW5ld2VzdC1waWktZW5jcnlwdGlvbi1rZXktMzI=,"
    "b2xkZXItcGlpLWVuY3J5cHRpb24ta2V5LTMyLWJ5dGU=",
    "CHANNEL_SECRETS_KEY": "Y2hhbm5lbC1zZWNyZXRzLWtleS0zMi1ieXRlcy1sb24=",
}


def run_django(env_overrides: dict, *args: str) -> subprocess.CompletedProcess:
    """Runs manage.py with only the variables given (plus PATH and HOME), whatever the caller's shell has."""
    env = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_env_reports_every_problem_at_once():
    env = Env(environ={"DEBUG": "maybe", "BEAT_STALE_AFTER_SECONDS": "soon", "TIME_ZONE": "Mars/Olympus"})
    assert env.flag("DEBUG", default=False) is False
    assert env.number("BEAT_STALE_AFTER_SECONDS", 90) == 90
    env.time_zone("TIME_ZONE", "Asia/Shanghai")
    env.text("SECRET_KEY", required=True)
    with pytest.raises(ConfigurationError) as error:
        env.raise_if_problems()
    message = str(error.value)
    assert "DEBUG='maybe' is not valid: expected one of true/false" in message
    assert "BEAT_STALE_AFTER_SECONDS='soon' is not valid: expected a whole number" in message
    assert "TIME_ZONE='Mars/Olympus' is not valid" in message
    assert "SECRET_KEY is required but not set." in message


def test_env_parses_good_values():
    env = Env(environ={"DEBUG": "Yes", "ALLOWED_HOSTS": "a.example, b.example ", "PORT": "8000"})
    assert env.flag("DEBUG", default=False) is True
    assert env.items("ALLOWED_HOSTS", []) == ["a.example", "b.example"]
    assert env.number("PORT", 1, minimum=1) == 8000
    env.raise_if_problems()


def test_production_without_its_required_variables_refuses_to_start_and_names_them():
    result = run_django({"DJANGO_ENV": "production", "DATABASE_URL": ""}, "check")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    for name in ("SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL"):
        assert f"{name} is required but not set." in result.stderr
    for name in ("IDENTITY_HASH_KEY", "PII_ENCRYPTION_KEYS", "CHANNEL_SECRETS_KEY"):
        assert f"{name} is required but not set." in result.stderr


def test_production_refuses_malformed_keys_for_data_at_rest_without_printing_them():
    """Review finding 9: the keys are separate from SECRET_KEY, required and checked in production."""
    result = run_django(
        {
            **PRODUCTION_ENV,
            "DATABASE_URL": current_database_url(),
            "IDENTITY_HASH_KEY": "password123",
            "PII_ENCRYPTION_KEYS": "not-a-fernet-key",
            "CHANNEL_SECRETS_KEY": "any text as before",
        },
        "check",
        "--deploy",
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "IDENTITY_HASH_KEY is too short or too plain" in result.stderr
    assert "PII_ENCRYPTION_KEYS key 1 is not a Fernet key" in result.stderr
    assert (
        "CHANNEL_SECRETS_KEY key 1 (the one new secrets are encrypted with) is not a Fernet key"
        in result.stderr
    )
    for secret in ("password123", "not-a-fernet-key", "any text as before"):
        assert secret not in result.stderr


def test_a_malformed_value_stops_start_up_with_its_name():
    result = run_django({**PRODUCTION_ENV, "DATABASE_URL": "mysql://db/cdp", "SECRET_KEY": "short"}, "check")
    assert result.returncode != 0
    assert "DATABASE_URL='mysql://db/cdp' is not valid: the scheme must be one of postgres" in result.stderr
    assert "SECRET_KEY='short' is not valid: use at least 50 random characters" in result.stderr


def test_production_refuses_debug_and_the_quickstart_broker():
    result = run_django(
        {
            **PRODUCTION_ENV,
            "DATABASE_URL": "postgres://cdp@db.internal/cdp",
            "DEBUG": "true",
            "CELERY_BROKER_URL": "filesystem://",
            "REDIS_URL": "redis:///0",
        },
        "check",
    )
    assert result.returncode != 0
    assert "DEBUG=true is not allowed with DJANGO_ENV=production" in result.stderr
    assert "CELERY_BROKER_URL='filesystem://' is not valid: the scheme must be one of redis" in result.stderr
    assert (
        "REDIS_URL='redis:///0' is not valid: a host (or a percent-encoded socket directory) is missing"
        in (result.stderr)
    )


def test_check_deploy_passes_with_production_settings():
    result = run_django(
        {**PRODUCTION_ENV, "DATABASE_URL": current_database_url()},
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
