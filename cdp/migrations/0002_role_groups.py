from django.db import migrations

# Frozen here as they were when this migration was written; a later change to the roles gets a
# migration of its own, so that existing installations receive it too.
CAPABILITIES = {
    "view_customers": "View customers and their profiles",
    "view_pii": "See full phone numbers and ID numbers",
    "edit_customers": "Edit customers, notes and static tags",
    "manage_data": "Manage sources, imports and identity rules",
    "view_segments": "View segments, tags and lifecycle stages",
    "manage_segments": "Create and change segments, tags, stages and scores",
    "view_journeys": "View journeys and their results",
    "manage_journeys": "Draw, publish and pause journeys",
    "view_messages": "View messages and delivery receipts",
    "send_messages": "Send messages to a customer by hand",
    "view_reports": "View reports",
    "manage_channels": "Manage channel accounts and credentials",
    "manage_users": "Manage users, roles and settings",
    "work_tasks": "Work on staff tasks",
}
ROLES = {
    "Admin": sorted(CAPABILITIES),
    "Marketer": [
        "view_customers",
        "edit_customers",
        "view_segments",
        "manage_segments",
        "view_journeys",
        "manage_journeys",
        "view_messages",
        "send_messages",
        "view_reports",
    ],
    "Sales": [
        "view_customers",
        "view_pii",
        "edit_customers",
        "view_segments",
        "view_journeys",
        "view_messages",
        "send_messages",
        "work_tasks",
    ],
    "Analyst": ["view_customers", "view_segments", "view_journeys", "view_messages", "view_reports"],
}


def create_role_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    content_type, _created = ContentType.objects.get_or_create(app_label="cdp", model="capability")
    permissions = {
        codename: Permission.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": label}
        )[0]
        for codename, label in CAPABILITIES.items()
    }
    for role, codenames in ROLES.items():
        group, _created = Group.objects.get_or_create(name=role)
        group.permissions.set([permissions[codename] for codename in codenames])


class Migration(migrations.Migration):
    dependencies = [
        ("cdp", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_role_groups, migrations.RunPython.noop)]
