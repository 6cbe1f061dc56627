"""Settings for the test suite: SQLite by default, any database through DATABASE_URL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test pytest

pytest-django creates the test database as ``test_<NAME>`` (``test_test_gw0``... under pytest-xdist);
on SQLite the test database lives in memory. No ``TASKS`` setting: the immediate backend is the default.
"""

from importlib.util import find_spec
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = "hephaestus-django-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

HAS_SPECTACULAR = find_spec("drf_spectacular") is not None

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.admin",
    "rest_framework",
    "django_filters",
    *(["drf_spectacular"] if HAS_SPECTACULAR else []),
    # the ORM task queue the runtime tests run real workers on (its tables must exist)
    *(["django_tasks_db"] if find_spec("django_tasks_db") else []),
    "hephaestus_django",
    "tests",
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR.parent / '.test-db.sqlite3'}",
        conn_max_age=0,
    ),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Fail fast instead of hanging on a server that is down; the settings the deployment guide
    # recommends for worker processes (server-side binding, statements prepared by psycopg)
    options = DATABASES["default"].setdefault("OPTIONS", {})
    options.setdefault("connect_timeout", 10)
    options.setdefault("server_side_binding", True)
    options.setdefault("prepare_threshold", 5)

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "tests.urls"

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

STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Fast hashing: the tests create users, they do not test password storage.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

REST_FRAMEWORK = {
    **({"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"} if HAS_SPECTACULAR else {}),
}
