"""Activate: the storm bases it writes back, its permission, and the operators hold it."""

import django.utils.timezone
from django.db import migrations, models

GROUP = "operators"
PERMISSION = ("activate_storm", "Can activate a storm")


def let_operators_activate(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    # as 0002: the permission is made now so that the group can hold it
    content_type, _ = ContentType.objects.get_or_create(app_label="stormui", model="auditentry")
    group, _ = Group.objects.get_or_create(name=GROUP)
    codename, name = PERMISSION
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type, codename=codename, defaults={"name": name}
    )
    group.permissions.add(permission)


def forbid_operators_activate(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    group = Group.objects.filter(name=GROUP).first()
    if group is not None:
        group.permissions.remove(
            *Permission.objects.filter(content_type__app_label="stormui", codename=PERMISSION[0])
        )


class Migration(migrations.Migration):
    dependencies = [
        ("stormui", "0003_storm_lock"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.CreateModel(
            name="SeenStormBase",
            fields=[
                ("storm_id", models.CharField(max_length=255, primary_key=True, serialize=False)),
                ("base", models.TextField()),
                ("seen_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "verbose_name": "storm base seen",
                "verbose_name_plural": "storm bases seen",
            },
        ),
        migrations.AlterModelOptions(
            name="auditentry",
            options={
                "default_permissions": ("view",),
                "ordering": ["-when", "-id"],
                "permissions": [
                    ("activate_storm", "Can activate a storm"),
                    ("deactivate_storm", "Can deactivate a storm"),
                    ("remove_storm", "Can remove a storm"),
                ],
                "verbose_name": "audit entry",
                "verbose_name_plural": "audit log",
            },
        ),
        migrations.AlterField(
            model_name="auditentry",
            name="action",
            field=models.CharField(
                choices=[
                    ("activate", "Activate"),
                    ("deactivate", "Deactivate"),
                    ("remove", "Remove"),
                    ("kill", "Kill"),
                ],
                max_length=16,
            ),
        ),
        migrations.RunPython(let_operators_activate, forbid_operators_activate),
    ]
