#!/usr/bin/env bash
# Download the wheels a bare CUDA machine lacks for `scripts/device_check.py` into .whl/.
#
# Run it HERE (a machine with PyPI), before carrying the working tree to a GPU machine that
# cannot download anything. That machine has Python 3.12, torch (CUDA), accelerate,
# transformers, peft, safetensors, scikit-learn, pandas, sentence-transformers and pillow, but
# not diffusers (nor gradio, which the check does not need). There:
#
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#       --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
#   PYTHONPATH=/tmp/site:. python scripts/device_check.py
#
# Wheels: diffusers at the version installed here, plus the dependencies of diffusers that
# the list above does not bring (requests and its four; filelock, numpy, regex, Pillow,
# safetensors and huggingface-hub come with torch / transformers). bitsandbytes (8-bit Adam)
# only with WITH_BITSANDBYTES=1 and only when its wheel is under 40 MB: the whole carried tree
# is capped at 64 MiB. .whl/ is kept out of git through .git/info/exclude.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.whl"
PY="${PYTHON:-python3}"
MAX_BNB_BYTES=$((40 * 1024 * 1024))

installed_version() {  # the version of a distribution installed here, or nothing
  "$PY" -c 'import sys, importlib.metadata as m
try: print(m.version(sys.argv[1]))
except m.PackageNotFoundError: pass' "$1"
}

download() {  # NAME==VERSION: one wheel for CPython 3.12 on x86-64 Linux (pure-python wheels match too)
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$DEST" "$1"
}

# 1. keep .whl/ out of git (info/exclude: local to this clone, no tracked file changes)
GIT_DIR="$ROOT/.git"
if [ -f "$GIT_DIR" ]; then  # a worktree or submodule: ".git" is a file "gitdir: PATH"
  GIT_DIR="$(sed -n 's/^gitdir: //p' "$GIT_DIR")"
  case "$GIT_DIR" in /*) ;; *) GIT_DIR="$ROOT/$GIT_DIR" ;; esac
fi
if [ -d "$GIT_DIR" ]; then
  mkdir -p "$GIT_DIR/info"
  touch "$GIT_DIR/info/exclude"
  grep -qxF '/.whl/' "$GIT_DIR/info/exclude" || echo '/.whl/' >> "$GIT_DIR/info/exclude"
else
  echo "note: no .git folder at $ROOT; add /.whl/ to your ignore rules yourself" >&2
fi

# 2. diffusers at the version installed here, and what it needs beyond the GPU machine's list
mkdir -p "$DEST"
DIFFUSERS="$(installed_version diffusers)"
if [ -z "$DIFFUSERS" ]; then
  echo "error: diffusers is not installed here; run 'bash scripts/setup.sh' first" >&2
  exit 2
fi
rm -f "$DEST"/diffusers-*.whl  # one diffusers only: an older one would be installed beside it
download "diffusers==$DIFFUSERS"
echo "diffusers $DIFFUSERS needs (from its wheel's METADATA):"
unzip -p "$DEST"/diffusers-"$DIFFUSERS"-*.whl '*/METADATA' | grep '^Requires-Dist' | grep -v 'extra ==' | sed 's/^/  /'

# requests: diffusers imports it at load time (pipeline_utils) and checks its version on import;
# transformers 5 no longer depends on it, so the GPU machine may not have it. Pinned to the
# versions installed here, which work together.
for dist in requests urllib3 idna certifi charset_normalizer; do
  version="$(installed_version "$dist")"
  if [ -n "$version" ]; then
    download "$dist==$version"
  else
    download "$dist"
  fi
done

# 3. optional: bitsandbytes (8-bit Adam), only if it is small enough to carry
if [ "${WITH_BITSANDBYTES:-0}" = "1" ]; then
  tmp="$(mktemp -d)"
  if "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform manylinux_2_24_x86_64 -d "$tmp" bitsandbytes; then
    wheel="$(ls "$tmp"/bitsandbytes-*.whl)"
    size="$(stat -c %s "$wheel")"
    if [ "$size" -le "$MAX_BNB_BYTES" ]; then
      mv "$wheel" "$DEST/"
      echo "bitsandbytes: $(basename "$wheel") ($((size / 1024 / 1024)) MiB) added"
    else
      echo "bitsandbytes: left out, its wheel is $((size / 1024 / 1024)) MiB (limit 40 MiB)"
    fi
  else
    echo "bitsandbytes: no wheel for CPython 3.12 x86-64 Linux; left out"
  fi
  rm -rf "$tmp"
fi

# 4. what will be carried
echo
echo "wheels in $DEST:"
for f in "$DEST"/*.whl; do
  stat -c '%s %n' "$f"
done | awk '{ n = split($2, p, "/"); printf "  %8.2f MiB  %s\n", $1 / 1048576, p[n]; total += $1 }
            END { printf "total: %.2f MiB (the whole carried tree is capped at 64 MiB)\n", total / 1048576 }'
