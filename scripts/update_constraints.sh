#!/usr/bin/env bash
# Move the pinned versions (constraints.txt) forward on purpose.
#
# Installs the newest versions pyproject.toml allows into a fresh virtual environment, runs the
# whole test suite there, and only when it passes writes constraints.txt from what was installed.
# A red suite leaves constraints.txt as it is (fix the code or narrow pyproject.toml first).
# Then review `git diff constraints.txt` and commit it with the suite's result in the message.
#
#   bash scripts/update_constraints.sh [VENV_DIR]      # default .venv-update (git-ignored)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv-update}"
python -m venv --clear "$venv"
py="$venv/bin/python"
"$py" -m pip install --quiet --upgrade pip
"$py" -m pip install --quiet "torch==2.13.0"          # the CPU build, as scripts/setup.sh installs it
"$py" -m pip install --quiet --upgrade -e ".[test]"   # no constraints: the newest the ranges allow
"$py" -m pip check
"$py" -m pytest -q -p no:cacheprovider
"$py" scripts/freeze_constraints.py > constraints.txt.new
mv constraints.txt.new constraints.txt
"$py" -m pip install --quiet -e . >/dev/null          # leave the checkout's egg-info as the venv wrote it
echo "constraints.txt now pins what the suite just passed with; review: git diff constraints.txt"
