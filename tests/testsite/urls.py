from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from pa_dbhealth import views


def one_database(request: HttpRequest, alias: str) -> HttpResponse:
    """The health view for one alias, so a test can leave the others out of the picture."""
    return views.health(request, databases=[alias])


urlpatterns = [
    path("dbhealth/", include("pa_dbhealth.urls")),
    path("health/<str:alias>/", one_database),
]
