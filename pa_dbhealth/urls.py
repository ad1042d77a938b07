"""``path("dbhealth/", include("pa_dbhealth.urls"))`` serves the health view at ``dbhealth/``.

To check only some aliases: ``include("pa_dbhealth.urls"), {"databases": ["default"]}``.
"""

from django.urls import path

from pa_dbhealth import views

app_name = "pa_dbhealth"

urlpatterns = [
    path("", views.health, name="health"),
]
