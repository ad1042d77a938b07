from django.urls import path

from benchsite import views

urlpatterns = [path("db/", views.db), path("nodb/", views.nodb)]
