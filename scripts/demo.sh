#!/usr/bin/env bash
# Run the example project: bash scripts/demo.sh
#
# Needs only Python >= 3.11 (see scripts/_venv.sh for PYTHON and VENV). Migrates example_project's database
# (SQLite unless DATABASE_URL is set), makes the superuser admin/admin, seeds demo instances in every
# status, then serves the site on 127.0.0.1:$PORT (default 8000).
set -euo pipefail

# shellcheck source=scripts/_venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"

PORT="${PORT:-8000}"
cd "$REPO_ROOT/example_project"

heading "Migrating the database"
python manage.py migrate --no-input

heading "Superuser admin / admin"
export DJANGO_SUPERUSER_USERNAME=admin DJANGO_SUPERUSER_PASSWORD=admin DJANGO_SUPERUSER_EMAIL=admin@example.com
exists="$(python manage.py shell --verbosity 0 -c '
from django.contrib.auth import get_user_model
print(get_user_model()._default_manager.filter(username="admin").exists())
')"
if [ "$(printf '%s' "$exists" | tail -n 1)" = "True" ]; then
    python manage.py shell --verbosity 0 -c '
from django.contrib.auth import get_user_model
user = get_user_model()._default_manager.get(username="admin")
user.is_active = user.is_staff = user.is_superuser = True
user.set_password("admin")
user.save()
print("Superuser admin already existed: password reset to admin.")
'
else
    python manage.py createsuperuser --no-input
fi

heading "Seeding demo instances"
python manage.py seed_demo

heading "Demo"
echo "Demo running at http://127.0.0.1:${PORT}/admin/ (login admin / admin); API at http://127.0.0.1:${PORT}/api/"
exec python manage.py runserver "127.0.0.1:${PORT}"
