from django.db import migrations


def encoding_aes_keys_add(apps, schema_editor):
    """WeChat sandbox accounts made before pushes were encrypted get an EncodingAESKey of their own,
    stored with their other secrets (one generated at each use would not match the sender's)."""
    from connectors.kinds.sandbox_wechat_template import encoding_aes_key_new
    from connectors.vault import SecretsUnreadable, secrets_open, secrets_seal

    ChannelAccount = apps.get_model("connectors", "ChannelAccount")
    for account in ChannelAccount.objects.filter(kind="sandbox_wechat_template"):
        try:
            hidden = secrets_open(account.secrets_encrypted)
        except SecretsUnreadable:  # sealed with another key: its admin enters them again anyway
            continue
        if not hidden.get("encoding_aes_key"):
            account.secrets_encrypted = secrets_seal({**hidden, "encoding_aes_key": encoding_aes_key_new()})
            account.save(update_fields=["secrets_encrypted"])


class Migration(migrations.Migration):
    dependencies = [("connectors", "0006_rejected_callbacks_kept_short")]

    operations = [migrations.RunPython(encoding_aes_keys_add, migrations.RunPython.noop)]
