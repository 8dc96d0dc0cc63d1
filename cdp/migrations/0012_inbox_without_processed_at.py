"""Processed requests leave the inbox, so nothing marks them processed any more."""


from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('cdp', '0011_inbox_keeps_only_pending'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='ingestbatch',
            name='ingest_batch_pending',
        ),
        migrations.RemoveField(
            model_name='ingestbatch',
            name='processed_at',
        ),
    ]
