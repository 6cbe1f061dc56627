"""The browsable API, with forms that work as given.

DRF fills the raw-data form of a POST with every field of the view's serializer, blank (``"step":
""``, ``"id": ""``), which the API then refuses. Here a view may say what body to offer with
``example_body(method)``: a start of a registered workflow, a resume with an event the waiting
step declares, ``{}`` for cancel and retry.
"""

from __future__ import annotations

import json
from typing import Any

from rest_framework import renderers
from rest_framework.request import override_method


class BrowsableAPIRenderer(renderers.BrowsableAPIRenderer):
    """DRF's browsable API; the raw-data form holds the view's ``example_body`` when it has one."""

    def get_raw_data_form(self, data: Any, view: Any, method: str, request: Any) -> Any:
        form = super().get_raw_data_form(data, view, method, request)
        if form is None or not hasattr(view, "example_body"):
            return form
        with override_method(view, request, method):
            body = view.example_body(method)
        if body is not None:
            form.fields["_content"].initial = json.dumps(body, indent=4, ensure_ascii=False)
        return form


def with_our_browsable_api(renderers_: list[Any]) -> list[Any]:
    """The project's renderers, DRF's browsable API replaced by ours (and left out if it is)."""
    return [BrowsableAPIRenderer() if type(r) is renderers.BrowsableAPIRenderer else r for r in renderers_]
