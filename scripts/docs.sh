#!/usr/bin/env bash
# Build the documentation site: bash scripts/docs.sh [extra sphinx-build args]
#
# Needs only Python >= 3.11 (the docs tools are the "docs" dependency group, installed with "dev" by
# scripts/_venv.sh). Builds docs/ into docs/_build/html with warnings as errors, as CI does; open
# docs/_build/html/index.html.
set -euo pipefail

# shellcheck source=scripts/_venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"

heading "Documentation (sphinx-build -W)"
rm -rf docs/_build/html
python -m sphinx -W --keep-going -b html "$@" docs docs/_build/html
echo "built docs/_build/html/index.html"
