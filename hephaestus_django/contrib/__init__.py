"""Integrations with other projects, each behind an extra (``pip install hephaestus-django[celery]``)."""
