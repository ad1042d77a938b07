"""``path("dbhealth/", include("pa_dbhealth.urls"))`` serves the health view at ``dbhealth/``
and the status page at ``dbhealth/page/``.

To check only some aliases: ``include("pa_dbhealth.urls"), {"databases": ["default"]}``.
"""

from django.urls import path

from pa_dbhealth import page_views, views

app_name = "pa_dbhealth"

urlpatterns = [
    path("", views.health, name="health"),
    path("page/", page_views.page, name="page"),
]
