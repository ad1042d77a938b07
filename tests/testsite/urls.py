from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from pa_dbhealth import views


def one_database(request: HttpRequest, alias: str) -> HttpResponse:
    """The health view for one alias, so a test can leave the others out of the picture."""
    return views.health(request, databases=[alias])


def workers(request: HttpRequest) -> HttpResponse:
    """How many requests the site serves at once, as pa_dbhealth sees it (under uWSGI)."""
    from pa_dbhealth.core.workers import concurrent_workers  # only this view needs it

    found = concurrent_workers(None)
    return HttpResponse(f"{found.number}|{found.source}", content_type="text/plain")


urlpatterns = [
    path("dbhealth/", include("pa_dbhealth.urls")),
    path("health/<str:alias>/", one_database),
    path("workers/", workers),
]
