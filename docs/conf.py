"""Sphinx configuration of the documentation site: ``bash scripts/docs.sh`` builds it (warnings are errors).

Pages are Markdown (MyST); the reference is generated from the docstrings with autodoc, which
imports the package, so Django is set up here with the smallest settings that load every module.
"""

from __future__ import annotations

import sys
from pathlib import Path

import django
from django.conf import settings

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))

settings.configure(
    INSTALLED_APPS=[
        "django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions",
        "django.contrib.messages", "django.contrib.admin", "rest_framework", "django_filters",
        "hephaestus_django",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    USE_TZ=True,
)
django.setup()

import hephaestus_django  # noqa: E402 - needs the settings above

project = "hephaestus_django"
author = "hephaestus_django contributors"
copyright = "hephaestus_django contributors"  # noqa: A001 - Sphinx's name
version = release = hephaestus_django.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.viewcode"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
myst_enable_extensions = ["deflist"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}

html_theme = "furo"
html_title = f"hephaestus_django {release}"
