from django.conf import settings
from django.urls import include, path

from benchsite import views

urlpatterns = [path("db/", views.db), path("nodb/", views.nodb)]
if "pa_dbhealth" in settings.INSTALLED_APPS:  # its health view: the wait figures (#23)
    urlpatterns.append(path("dbhealth/", include("pa_dbhealth.urls")))
