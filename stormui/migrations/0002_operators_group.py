"""The "operators" group: people who may deactivate and remove storms."""

from django.db import migrations

GROUP = "operators"
PERMISSIONS = [
    ("deactivate_storm", "Can deactivate a storm"),
    ("remove_storm", "Can remove a storm"),
]


def create_operators(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    # permissions are normally made after migrate (post_migrate): make them here, now,
    # so that the group can hold them; post_migrate then finds them and leaves them be
    content_type, _ = ContentType.objects.get_or_create(app_label="stormui", model="auditentry")
    group, _ = Group.objects.get_or_create(name=GROUP)
    for codename, name in PERMISSIONS:
        permission, _ = Permission.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": name}
        )
        group.permissions.add(permission)


def remove_operators(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("stormui", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_operators, remove_operators)]
