"""Suite-wide pytest hooks: the ``postgres`` and ``browser`` markers.

- ``@pytest.mark.postgres`` tests are skipped unless the database is PostgreSQL. With
  ``HEPHAESTUS_REQUIRE_POSTGRES=1`` they fail instead, and under ``CI`` (or that variable) a PostgreSQL
  ``DATABASE_URL`` whose server cannot be reached stops the run before any test.
- ``@pytest.mark.browser`` tests are skipped when ``/usr/bin/chromium`` is missing, and fail instead
  with ``HEPHAESTUS_REQUIRE_BROWSER=1``.
"""

import os
from pathlib import Path

import pytest
from django.conf import settings

CHROMIUM = Path("/usr/bin/chromium")


def _required(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def _is_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def pytest_sessionstart(session: pytest.Session) -> None:
    if not _is_postgres() or not (os.environ.get("CI") or _required("HEPHAESTUS_REQUIRE_POSTGRES")):
        return
    if os.environ.get("PYTEST_XDIST_WORKER"):  # the controller already checked
        return
    import psycopg

    db = settings.DATABASES["default"]
    try:
        psycopg.connect(
            dbname=db.get("NAME") or "postgres",
            user=db.get("USER") or None,
            password=db.get("PASSWORD") or None,
            host=db.get("HOST") or None,
            port=db.get("PORT") or None,
            connect_timeout=10,
        ).close()
    except psycopg.Error as exc:
        pytest.exit(f"PostgreSQL from DATABASE_URL is unreachable: {exc}", returncode=1)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") and not _is_postgres():
        reason = "needs PostgreSQL (DATABASE_URL)"
        if _required("HEPHAESTUS_REQUIRE_POSTGRES"):
            pytest.fail(f"{reason}, and HEPHAESTUS_REQUIRE_POSTGRES is set", pytrace=False)
        pytest.skip(reason)
    if item.get_closest_marker("browser") and not CHROMIUM.exists():
        reason = f"needs Chromium at {CHROMIUM} (apt-get install chromium)"
        if _required("HEPHAESTUS_REQUIRE_BROWSER"):
            pytest.fail(f"{reason}, and HEPHAESTUS_REQUIRE_BROWSER is set", pytrace=False)
        pytest.skip(reason)
