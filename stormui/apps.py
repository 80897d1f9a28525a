from django.apps import AppConfig


class StormuiConfig(AppConfig):
    name = "stormui"
    verbose_name = "Storm UI"
    default_auto_field = "django.db.models.BigAutoField"
