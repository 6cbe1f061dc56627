#!/usr/bin/env bash
# Run every check and the test suite: bash scripts/test.sh [pytest args...]
#
# Needs only Python >= 3.11: makes .venv and installs the project into it on first use (see scripts/_venv.sh
# for PYTHON, VENV, EXTRAS, DEP_GROUPS and DJANGO_SPEC). DATABASE_URL selects the database (unset: SQLite), e.g.
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test bash scripts/test.sh
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/core -x`.
set -euo pipefail

# shellcheck source=scripts/_venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"

export DJANGO_SETTINGS_MODULE=tests.settings

heading "Import contracts (lint-imports)"
lint-imports --no-cache

heading "Lint (ruff check .)"
ruff check .

heading "Types (mypy)"
mypy

heading "Migrations are complete (makemigrations --check --dry-run)"
app_label="$(python - <<'EOF'
import django
from django.apps import apps

django.setup()
print(next(c.label for c in apps.get_app_configs() if c.name == "hephaestus_django"))
EOF
)"
python -m django makemigrations "$app_label" --check --dry-run

heading "Tests (pytest) on ${DATABASE_URL:-SQLite}"
status=0
python -m pytest -n auto "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "error: pytest collected no tests (exit 5)" >&2
    exit 1
fi
exit "$status"
