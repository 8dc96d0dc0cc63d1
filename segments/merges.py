"""What rules keep per customer follows merges: when two profiles turn out to be one person, the
merged one's static tags and score entries move to the survivor (its events already have), and
both are evaluated again so segments, dynamic tags and stages follow. Undoing a merge gives back the
score entries of the events that go back."""

from __future__ import annotations

from django.db import connection

from cdp.merge import merge_pairs_json
from cdp.sqlvalues import id_array
from segments.scoring import scores_recompute
from segments.signals import refresh_later


def merge_follow(sender, *, pairs: list[tuple[int, int]], **kwargs) -> None:
    """``pairs``: (survivor, merged); several customers may merge into one survivor at once."""
    pairs_json = merge_pairs_json(pairs)
    merged_ids = id_array(merged for _survivor, merged in pairs)
    with connection.cursor() as cursor:
        # Static tags: the survivor holds the union (one row per tag, however many bring it). Rule
        # tags follow the refresh.
        cursor.execute(
            """
            WITH moving AS (
                SELECT ct.id, pair.survivor,
                       row_number() OVER (PARTITION BY pair.survivor, ct.tag_id ORDER BY ct.id) AS nth
                FROM segments_customertag AS ct
                JOIN json_to_recordset(%s::json) AS pair(merged bigint, survivor bigint)
                    ON ct.customer_id = pair.merged
                WHERE ct.origin <> 'rule'
                  AND NOT EXISTS (SELECT 1 FROM segments_customertag AS held
                                  WHERE held.customer_id = pair.survivor AND held.tag_id = ct.tag_id)
            )
            UPDATE segments_customertag AS ct SET customer_id = moving.survivor
            FROM moving WHERE ct.id = moving.id AND moving.nth = 1
            """,
            [pairs_json],
        )
        cursor.execute(
            "DELETE FROM segments_customertag WHERE customer_id = ANY(%s::bigint[]) AND origin <> 'rule'",
            [merged_ids],
        )
        cursor.execute(
            """
            UPDATE segments_scoreentry AS entry SET customer_id = pair.survivor
            FROM json_to_recordset(%s::json) AS pair(merged bigint, survivor bigint)
            WHERE entry.customer_id = pair.merged
            """,
            [pairs_json],
        )
    touched = sorted({customer_id for pair in pairs for customer_id in pair})
    scores_recompute(customer_ids=touched)
    refresh_later(touched)


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
