"""The migration-made role groups hold exactly the capabilities the code grants each role."""

from django.contrib.auth.models import Group

from cdp.access import ROLE_CAPABILITIES


def test_migrated_roles_match_the_roles_in_code(db):
    for role, capabilities in ROLE_CAPABILITIES.items():
        granted = set(Group.objects.get(name=role).permissions.values_list("codename", flat=True))
        assert granted == set(capabilities), f"{role}: add a migration for the role change"
