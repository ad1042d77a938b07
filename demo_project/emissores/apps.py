from django.apps import AppConfig


class EmissoresConfig(AppConfig):
    name = "demo_project.emissores"
    default_auto_field = "django.db.models.BigAutoField"
