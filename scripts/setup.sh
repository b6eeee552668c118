#!/usr/bin/env bash
# Set up the project's virtual environment (.venv) from requirements.lock.
#
# Finds Python 3.10 (TFX 1.16 supports Python 3.9-3.10 only) on PATH or under pyenv,
# creates .venv with pip, installs uv (fast resolver/installer) into it, installs the
# exact locked set and the project itself (editable). Re-running is cheap: the install
# is skipped while requirements.lock and setup.py are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
VENV=.venv
start=$(date +%s)

find_python310() {
  local candidates=()
  if command -v python3.10 >/dev/null 2>&1; then candidates+=("$(command -v python3.10)"); fi
  local roots=()
  if command -v pyenv >/dev/null 2>&1; then roots+=("$(pyenv root)"); fi
  roots+=("${PYENV_ROOT:-}" "$HOME/.pyenv" "/root/.pyenv" "/opt/pyenv")
  for root in "${roots[@]}"; do
    [ -n "$root" ] || continue
    for p in "$root"/versions/3.10.*/bin/python3.10; do
      [ -x "$p" ] && candidates+=("$p")
    done
  done
  for p in /usr/bin/python3.10 /usr/local/bin/python3.10; do
    [ -x "$p" ] && candidates+=("$p")
  done
  for p in "${candidates[@]}"; do
    # A pyenv shim can exist without a 3.10 behind it: check that it really runs 3.10.
    if "$p" -c 'import sys, venv; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

venv_ok() {
  [ -x "$VENV/bin/python" ] &&
    "$VENV/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1
}

if ! venv_ok; then
  if ! PY=$(find_python310); then
    cat >&2 <<'MSG'
error: Python 3.10 was not found (TFX 1.16 needs Python 3.9 or 3.10).
  Looked for python3.10 on PATH, under $(pyenv root)/versions/3.10.*/bin/, and in /usr/bin.
  Fix: install it with pyenv (`pyenv install 3.10.13`) or your OS packages
  (`apt-get install python3.10 python3.10-venv`), then run this command again.
MSG
    exit 1
  fi
  echo "setup: creating $VENV with $PY"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
fi

stamp="$VENV/.installed-lock"
# The install options are part of the stamp: a venv installed without bytecode is
# installed again once.
install_options="--compile-bytecode"
want=$( (cat requirements.lock setup.py; echo "$install_options") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
  # sync: exactly the locked set, nothing more (removes strays from older locks).
  # --compile-bytecode: uv does not write .pyc files by default, so every process would
  # compile TensorFlow's and TFX's ~7,000 modules from source at each import (measured:
  # 9.7 s of a 17.9 s cached `tfx-transfer run`), and where PYTHONDONTWRITEBYTECODE is
  # set (this CI), at every start. Compiled once here instead (about 25 s).
  "$VENV/bin/uv" pip sync --quiet $install_options --python "$VENV/bin/python" requirements.lock
  "$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" --no-deps -e .
  echo "$want" >"$stamp"
  echo "setup: installed requirements.lock into $VENV in $(( $(date +%s) - start ))s"
else
  echo "setup: $VENV is up to date with requirements.lock ($(( $(date +%s) - start ))s)"
fi
