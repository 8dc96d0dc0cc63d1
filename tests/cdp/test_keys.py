"""Keys for data at rest (review finding 9): separate from SECRET_KEY, listed newest first so they rotate,
required in production, and ``rotate_keys`` moves every stored value onto the newest one."""

import base64
import hashlib
import hmac
import io
import json

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.checks import run_checks
from django.core.management import call_command

from cdp.customers import customer_identities
from cdp.identity import decrypt_sensitive, normalise
from cdp.keys import is_fernet_key, local_keys
from cdp.models import Customer, Identity
from connectors.accounts import account_create
from connectors.models import ChannelAccount
from connectors.vault import secrets_open
from tests.cdp.test_identity import send

ID_NUMBER = "11010519491231002X"


def new_key() -> str:
    return Fernet.generate_key().decode()


def rotate() -> str:
    out = io.StringIO()
    call_command("rotate_keys", batch_size=2, stdout=out, stderr=out)
    return out.getvalue()


def test_an_id_number_encrypted_with_an_old_key_still_reads_once_a_new_key_is_first(settings):
    old = new_key()
    settings.PII_ENCRYPTION_KEYS = [old]
    token = normalise("id_number", ID_NUMBER).encrypted_value

    settings.PII_ENCRYPTION_KEYS = [new_key(), old]
    assert decrypt_sensitive(token) == ID_NUMBER
    settings.PII_ENCRYPTION_KEYS = [new_key()]
    with pytest.raises(InvalidToken):
        decrypt_sensitive(token)


def test_after_rotate_keys_every_value_reads_with_only_the_new_keys(server_source, settings):
    old_pii, old_channel = new_key(), new_key()
    settings.PII_ENCRYPTION_KEYS = [old_pii]
    settings.CHANNEL_SECRETS_KEY = [old_channel]
    for index in range(5):  # more than one batch of two
        send(
            server_source,
            {
                "userId": f"u-{index}",
                "kind": "identify",
                "traits": {"id_number": f"11010519491231{index:03d}X"},
            },
        )
    account = account_create(
        kind="sandbox_sms", name="短信沙箱", values={"callback_secret": "callback-secret-1"}
    )

    new_pii, new_channel = new_key(), new_key()
    settings.PII_ENCRYPTION_KEYS = [new_pii, old_pii]
    settings.CHANNEL_SECRETS_KEY = [new_channel, old_channel]
    output = rotate()
    assert "ID numbers: 5 checked, 5 re-encrypted, 0 re-hashed (done)" in output
    assert "Channel account secrets: 1 checked, 1 re-encrypted, 0 re-hashed (done)" in output

    settings.PII_ENCRYPTION_KEYS = [new_pii]
    settings.CHANNEL_SECRETS_KEY = [new_channel]
    for identity in Identity.objects.filter(type="id_number"):
        assert (
            Fernet(new_pii).decrypt(identity.encrypted_value.encode()).decode().startswith("11010519491231")
        )
    account.refresh_from_db()
    assert json.loads(Fernet(new_channel).decrypt(account.secrets_encrypted.encode())) == {
        "callback_secret": "callback-secret-1"
    }
    assert secrets_open(account.secrets_encrypted) == {"callback_secret": "callback-secret-1"}
    # A second run (or one after an interruption) finds everything current and rewrites nothing.
    assert "ID numbers: 5 checked, 0 re-encrypted, 0 re-hashed (done)" in rotate()


def test_a_customer_found_by_id_number_before_a_hash_key_rotation_is_found_by_it_after(
    server_source, settings
):
    send(
        server_source,
        {"userId": "u-1", "kind": "identify", "traits": {"id_number": ID_NUMBER, "name": "李雷"}},
    )
    customer = Customer.objects.get()

    settings.IDENTITY_HASH_KEY = "a-new-identity-hash-key-" + "Zq8Kp3Lr7Wm2Xn5Tv9Bc" * 2
    assert "ID numbers: 1 checked, 0 re-encrypted, 1 re-hashed (done)" in rotate()
    send(server_source, {"userId": "u-2", "event": "Called", "context": {"traits": {"id_number": ID_NUMBER}}})

    assert Customer.objects.filter(merged_into=None).get() == customer
    assert customer.events.filter(name="Called").exists()
    rows = customer_identities(customer=customer, show_pii=True)
    assert [row.value for row in rows if row.type == "id_number"] == [ID_NUMBER]


def test_values_encrypted_with_the_keys_derived_from_secret_key_read_and_move_to_the_new_keys(db, settings):
    """Deployments from before the separate keys: their ID numbers and channel secrets were encrypted
    with keys derived from SECRET_KEY (and CHANNEL_SECRETS_KEY was any text)."""
    master = hashlib.sha256(settings.SECRET_KEY.encode()).digest()
    legacy_pii = Fernet(
        base64.urlsafe_b64encode(hmac.new(master, b"identity-encrypt", hashlib.sha256).digest())
    )
    legacy_hash = (
        "h:"
        + hmac.new(
            hmac.new(master, b"identity-hash", hashlib.sha256).digest(), ID_NUMBER.encode(), hashlib.sha256
        ).hexdigest()
    )
    customer = Customer.objects.create(name="李雷")
    identity = Identity.objects.create(
        customer=customer,
        type="id_number",
        value=legacy_hash,
        encrypted_value=legacy_pii.encrypt(ID_NUMBER.encode()).decode(),
        first_seen_at=customer.created_at,
    )
    old_text_key = "any long random text that was the channel key before"
    stretched = base64.urlsafe_b64encode(hashlib.sha256(b"channel-secrets:" + old_text_key.encode()).digest())
    account = account_create(
        kind="sandbox_sms", name="短信沙箱", values={"callback_secret": "callback-secret-1"}
    )
    ChannelAccount.objects.filter(pk=account.pk).update(
        secrets_encrypted=Fernet(stretched).encrypt(b'{"callback_secret": "callback-secret-1"}').decode()
    )
    settings.CHANNEL_SECRETS_KEY = [settings.CHANNEL_SECRETS_KEY[0], old_text_key]

    assert decrypt_sensitive(identity.encrypted_value) == ID_NUMBER
    rotate()
    identity.refresh_from_db()
    account.refresh_from_db()
    assert identity.value == normalise("id_number", ID_NUMBER).value
    assert (
        Fernet(settings.PII_ENCRYPTION_KEYS[0]).decrypt(identity.encrypted_value.encode())
        == ID_NUMBER.encode()
    )
    settings.CHANNEL_SECRETS_KEY = settings.CHANNEL_SECRETS_KEY[:1]
    assert secrets_open(account.secrets_encrypted) == {"callback_secret": "callback-secret-1"}


def test_rotate_keys_names_what_no_listed_key_reads_and_leaves_it(db, settings):
    customer = Customer.objects.create(name="李雷")
    settings.PII_ENCRYPTION_KEYS = [new_key()]
    identity = normalise("id_number", ID_NUMBER)
    stored = Identity.objects.create(
        customer=customer,
        type="id_number",
        value=identity.value,
        encrypted_value=identity.encrypted_value,
        first_seen_at=customer.created_at,
    )
    settings.PII_ENCRYPTION_KEYS = [new_key()]  # the old key removed before rotate_keys ran
    output = rotate()
    assert f"ID numbers: no listed key reads rows {stored.pk}." in output
    assert "keep the older keys" in output


def test_check_deploy_names_each_missing_or_malformed_key(settings):
    settings.IDENTITY_HASH_KEY = "short"
    settings.PII_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    settings.CHANNEL_SECRETS_KEY = []
    messages = [
        error.msg for error in run_checks(include_deployment_checks=True) if error.id.startswith("cdp.")
    ]
    assert any(message.startswith("IDENTITY_HASH_KEY is too short") for message in messages)
    assert any(message.startswith("PII_ENCRYPTION_KEYS key 1 is not a Fernet key") for message in messages)
    assert "CHANNEL_SECRETS_KEY is required but not set." in messages
    assert not any("not-a-fernet-key" in message for message in messages)


def test_development_generates_its_keys_once_and_keeps_them(tmp_path):
    first = local_keys(tmp_path)
    assert local_keys(tmp_path) == first
    assert len(first["IDENTITY_HASH_KEY"]) >= 32
    assert is_fernet_key(first["PII_ENCRYPTION_KEYS"]) and is_fernet_key(first["CHANNEL_SECRETS_KEY"])
    assert (tmp_path / "keys.json").stat().st_mode & 0o077 == 0
