from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from demo_project.emissores.models import Emissor


def listar_emissores(request: HttpRequest) -> HttpResponse:
    """The list view of the original question, written the Django way."""
    return render(request, "emissores/listar_emissores.html", {"emissores": Emissor.objects.all()})
