#!/usr/bin/env bash
# One-step set-up on a fresh machine.
#   bash scripts/setup.sh        -> the app's dependencies
#   bash scripts/setup.sh test   -> also the test extras and Debian's Chromium for the browser tests
# torch is installed first, pinned to the CPU build that pip finds locally; the project's own
# torch requirement is a range that this build satisfies, so nothing bigger is pulled in.
# On a CUDA machine, install the CUDA torch build you want first and this script keeps it.
# Everything else installs at the versions in constraints.txt, the ones the test suite passes
# with (scripts/update_constraints.sh moves them forward, tests first).
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-app}"

if ! python -c "import torch" 2>/dev/null; then
  python -m pip install --quiet "torch==2.13.0"
fi
if [[ "$what" == "test" ]]; then
  python -m pip install --quiet -c constraints.txt -e ".[test]"
  if [[ ! -x /usr/bin/chromium ]]; then
    if command -v apt-get >/dev/null; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
      echo "Browser tests need Chromium at /usr/bin/chromium (Debian package 'chromium')." >&2
    fi
  fi
else
  python -m pip install --quiet -c constraints.txt -e .
fi
