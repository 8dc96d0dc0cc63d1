"""What rules keep per customer follows merges: when two profiles turn out to be one person, the
merged one's static tags and score entries move to the survivor (its events already have), and
both are evaluated again so segments, dynamic tags and stages follow. Undoing a merge gives back the
score entries of the events that go back."""

from __future__ import annotations

from django.db import connection

from segments.scoring import scores_recompute
from segments.signals import refresh_later


def merge_follow(sender, *, survivor_id: int, merged_id: int, **kwargs) -> None:
    with connection.cursor() as cursor:
        # Static tags: the survivor holds the union. Rule tags follow the refresh.
        cursor.execute(
            """
            UPDATE segments_customertag AS ct SET customer_id = %s
            WHERE ct.customer_id = %s AND ct.origin <> 'rule'
              AND NOT EXISTS (SELECT 1 FROM segments_customertag AS held
                              WHERE held.customer_id = %s AND held.tag_id = ct.tag_id)
            """,
            [survivor_id, merged_id, survivor_id],
        )
        cursor.execute(
            "DELETE FROM segments_customertag WHERE customer_id = %s AND origin <> 'rule'", [merged_id]
        )
        cursor.execute(
            "UPDATE segments_scoreentry SET customer_id = %s WHERE customer_id = %s", [survivor_id, merged_id]
        )
    scores_recompute(customer_ids=[survivor_id, merged_id])
    refresh_later([survivor_id, merged_id])


def unmerge_follow(sender, *, survivor_id: int, merged_id: int, **kwargs) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE segments_scoreentry AS s SET customer_id = %s
            FROM cdp_event AS e
            WHERE s.customer_id = %s AND s.event_id = e.id AND e.customer_id = %s
            """,
            [merged_id, survivor_id, merged_id],
        )
    scores_recompute(customer_ids=[survivor_id, merged_id])
    refresh_later([survivor_id, merged_id])
