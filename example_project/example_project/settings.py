"""Settings of the demo site: SQLite by default, PostgreSQL with DATABASE_URL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/demo python manage.py migrate

``EXAMPLE_TASKS`` picks the task backend, as docs/deployment.md sets each up: ``immediate`` (the
default: no TASKS setting), ``db`` (django-tasks-db), ``rq`` (django-tasks-rq, Redis at ``REDIS_URL``)
or ``celery`` (Celery workers, broker at ``CELERY_BROKER_URL``).
"""

import os
from importlib.util import find_spec
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "demo-only-not-secret"  # noqa: S105 - a local demo
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    *(["drf_spectacular"] if find_spec("drf_spectacular") else []),
    "hephaestus_django",
    "orders",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": dj_database_url.config(default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "/static/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    **({"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"} if find_spec("drf_spectacular") else {}),
}

HEPHAESTUS: dict[str, object] = {}

# The task backend (docs/deployment.md). Without a TASKS setting, steps run in the request through
# Django Tasks' immediate backend.
EXAMPLE_TASKS = os.environ.get("EXAMPLE_TASKS", "immediate")
if EXAMPLE_TASKS == "db":
    INSTALLED_APPS += ["django_tasks_db"]
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
elif EXAMPLE_TASKS == "rq":
    INSTALLED_APPS += ["django_rq"]
    RQ_QUEUES = {"default": {"URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")}}
    TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
elif EXAMPLE_TASKS == "celery":
    INSTALLED_APPS += ["django_tasks_fennel"]
    TASKS = {"default": {"BACKEND": "hephaestus_django.contrib.celery.CeleryBackend"}}
    CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    CELERY_TASK_ACKS_LATE = True
    CELERY_TASK_REJECT_ON_WORKER_LOST = True
    CELERY_WORKER_PREFETCH_MULTIPLIER = 1
    CELERY_TASK_QUEUE_MAX_PRIORITY = 10
elif EXAMPLE_TASKS != "immediate":
    raise ImproperlyConfigured(f"EXAMPLE_TASKS must be immediate, db, rq or celery, not {EXAMPLE_TASKS!r}")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"hephaestus": {"handlers": ["console"], "level": "INFO"}},
}
