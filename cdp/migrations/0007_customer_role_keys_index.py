from django.db import migrations

# The roles a customer holds, from the "role" trait ("supplier buyer", "supplier,buyer" or a list),
# as lower-case keys: the same rule as cdp.roles.customer_role_keys (a test holds them together).
ROLE_KEYS_FUNCTION = r"""
CREATE OR REPLACE FUNCTION cdp_role_keys(traits jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE jsonb_typeof(traits -> 'role')
        WHEN 'array' THEN ARRAY(
            SELECT lower(btrim(value)) FROM jsonb_array_elements_text(traits -> 'role') AS value
            WHERE btrim(value) <> '')
        WHEN 'null' THEN '{}'::text[]
        WHEN 'object' THEN ARRAY[lower(traits ->> 'role')]
        ELSE ARRAY(
            SELECT lower(part)
            FROM regexp_split_to_table(replace(traits ->> 'role', ',', ' '), '\s+') AS part
            WHERE part <> '')
    END
$$
"""


class Migration(migrations.Migration):
    dependencies = [("cdp", "0006_inbox_plain_json")]

    operations = [
        migrations.RunSQL(ROLE_KEYS_FUNCTION, "DROP FUNCTION IF EXISTS cdp_role_keys(jsonb)"),
        # Filtering a million customers by role reads this index, not every profile.
        migrations.RunSQL(
            "CREATE INDEX customer_role_keys ON cdp_customer USING gin (cdp_role_keys(traits))"
            " WHERE merged_into_id IS NULL AND traits ? 'role'",
            "DROP INDEX IF EXISTS customer_role_keys",
        ),
    ]
