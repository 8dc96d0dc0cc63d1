"""Filtering customers by role: the database's reading of the role trait is the profile's reading."""

from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.customers import customer_search
from cdp.models import Customer
from cdp.roles import customer_role_keys

words = st.text(alphabet="abcXYZ09_-供应商买家 ,", max_size=20)
role_values = words | st.lists(words | st.integers(), max_size=4) | st.integers() | st.booleans() | st.none()


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(role_values)
def test_the_index_function_reads_roles_as_the_profile_does(db, value):
    with connection.cursor() as cursor:
        cursor.execute("SELECT cdp_role_keys(jsonb_build_object('role', %s::jsonb))", [_json(value)])
        in_database = cursor.fetchone()[0]
    assert in_database == customer_role_keys(Customer(traits={"role": value}))


def _json(value):
    import json

    return json.dumps(value, ensure_ascii=False)


def test_the_role_filter_finds_every_holder_and_uses_the_index(db):
    Customer.objects.bulk_create(
        [
            Customer(name="both", traits={"role": "Supplier buyer"}),
            Customer(name="listed", traits={"role": ["buyer", "agent"]}),
            Customer(name="comma", traits={"role": "supplier,buyer"}),
            Customer(name="neither", traits={"role": "buyers-club"}),
            Customer(name="none", traits={}),
        ]
    )
    assert sorted(c.name for c in customer_search(role="buyer")) == ["both", "comma", "listed"]
    assert sorted(c.name for c in customer_search(role="Supplier")) == ["both", "comma"]

    # Among many customers, few with a role: the planner reads the role index, not the table.
    Customer.objects.bulk_create(Customer(name=f"visitor {number}") for number in range(5000))
    query = customer_search(role="buyer")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE cdp_customer")
        sql, params = query.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "customer_role_keys" in plan, plan
