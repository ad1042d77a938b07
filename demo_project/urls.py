from django.contrib import admin
from django.urls import include, path

from demo_project.emissores import views

urlpatterns = [
    path("", views.listar_emissores, name="listar_emissores"),
    path("admin/", admin.site.urls),
    path("dbhealth/", include("pa_dbhealth.urls")),
]
