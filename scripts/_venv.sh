# Sourced by scripts/test.sh and scripts/demo.sh: create the virtualenv and install the project into it.
#
# Environment:
#   PYTHON       interpreter that creates the venv (default: python3; must be >= 3.11)
#   VENV         venv directory (default: .venv at the repository root)
#   EXTRAS       extras installed with the project (default: postgres,worker,rq,celery,otel,schema)
#   DEP_GROUPS   PEP 735 dependency groups of pyproject.toml installed beside it (default: dev = test, lint
#                and docs tools); needs pip >= 25.1, which is installed into the venv first
#   DJANGO_SPEC  optional requirement resolved together with the project, e.g. 'Django>=6.1,<6.2'
#
# After sourcing, the venv is activated and REPO_ROOT is the repository root (and the current directory).
# The install is skipped when a stamp file newer than pyproject.toml records the same inputs.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
EXTRAS="${EXTRAS:-postgres,worker,rq,celery,otel,schema}"
DEP_GROUPS="${DEP_GROUPS:-dev}"
DJANGO_SPEC="${DJANGO_SPEC:-}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

heading() {
    printf '\n\033[1m==> %s\033[0m\n' "$*"
}

if [ ! -x "$VENV/bin/python" ]; then
    heading "Creating virtualenv $VENV with $PYTHON"
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "error: '$PYTHON' is missing or older than Python 3.11 (set PYTHON=/path/to/python3.11+)" >&2
        exit 1
    fi
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi

# shellcheck disable=SC1091
source "$VENV/bin/activate"

_stamp="$VENV/.hephaestus-install-stamp"
_inputs="extras=$EXTRAS groups=$DEP_GROUPS django=$DJANGO_SPEC python=$(python -c 'import sys; print(sys.version.split()[0])')"
if [ -f "$_stamp" ] && [ "$_stamp" -nt pyproject.toml ] && [ "$(cat "$_stamp")" = "$_inputs" ]; then
    heading "Using $VENV ($_inputs; up to date)"
else
    heading "Installing hephaestus-django[$EXTRAS] and groups $DEP_GROUPS ${DJANGO_SPEC:+with $DJANGO_SPEC }into $VENV"
    _t0=$SECONDS
    python -m pip install --quiet "pip>=25.1"  # --group (PEP 735)
    _group_args=()
    for _group in ${DEP_GROUPS//,/ }; do
        _group_args+=(--group "$_group")
    done
    # shellcheck disable=SC2086
    python -m pip install --quiet --editable ".[$EXTRAS]" "${_group_args[@]}" ${DJANGO_SPEC:+"$DJANGO_SPEC"}
    printf '%s' "$_inputs" >"$_stamp"
    echo "installed in $((SECONDS - _t0)) s"
fi
python -c 'import django, sys; print(f"Python {sys.version.split()[0]}, Django {django.get_version()}")'
