"""Processed requests now leave the ingest inbox as they are processed; those processed before go too
(their payloads were already emptied)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("cdp", "0010_eventkey_source_unindexed"),
    ]

    operations = [
        migrations.RunSQL("DELETE FROM cdp_ingestbatch WHERE processed_at IS NOT NULL", migrations.RunSQL.noop),
    ]
