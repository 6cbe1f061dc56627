from importlib.util import find_spec

from django.contrib import admin
from django.urls import include, path


def _exists(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


urlpatterns = [
    path("admin/", admin.site.urls),
]

if _exists("hephaestus_django.api.urls"):
    urlpatterns.append(path("api/", include("hephaestus_django.api.urls")))
