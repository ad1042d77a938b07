from django.contrib import admin

from demo_project.emissores.models import Emissor

admin.site.register(Emissor)
