"""Fewer index writes for every event stored: the message-id keys lose their own index on the source
(the unique constraint's index starts with it), and the daily rollups leave room on each page so that
adding to a day's count (no indexed column changes) is a heap-only update that writes no index."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("cdp", "0009_event_daily_by_name_day"),
    ]

    operations = [
        migrations.AlterField(
            model_name="eventkey",
            name="source",
            field=models.ForeignKey(
                db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="cdp.source"
            ),
        ),
        migrations.RunSQL(
            "ALTER TABLE cdp_customereventdaily SET (fillfactor = 80)",
            "ALTER TABLE cdp_customereventdaily RESET (fillfactor)",
        ),
    ]
