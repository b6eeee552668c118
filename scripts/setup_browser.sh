#!/usr/bin/env bash
# Install the headless browser the run-report test renders with (tests/test_report.py):
# Debian's `chromium` package, at /usr/bin/chromium.
#
# Idempotent and fast: when /usr/bin/chromium is there it prints its version and stops.
# It installs only as root or with password-less sudo, through apt-get; when it cannot
# (not root, no sudo, no apt-get, no network), it says why and exits 0: the report test
# then skips with a message naming this script, and the rest of the suite runs.
set -uo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
  echo "setup_browser: $("$CHROMIUM" --version 2>/dev/null || echo chromium) at $CHROMIUM"
  exit 0
fi

cannot() {
  echo "setup_browser: chromium is not installed and cannot be installed here ($1);" \
    "the run-report browser test will be skipped. To install it: apt-get install chromium"
  exit 0
}

if ! command -v apt-get >/dev/null 2>&1; then
  cannot "no apt-get: not a Debian-based system"
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  cannot "not root and no password-less sudo"
fi

export DEBIAN_FRONTEND=noninteractive
install() {
  "${as_root[@]}" apt-get install -y -q --no-install-recommends chromium
}
start=$(date +%s)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "setup_browser: installing Debian's chromium (apt-get, about 100 MB)..."
# The package lists may be stale or absent (fresh containers): refresh once and retry.
if ! install >"$log" 2>&1; then
  "${as_root[@]}" apt-get update -q >>"$log" 2>&1
  if ! install >>"$log" 2>&1; then
    tail -n 5 "$log"
    cannot "apt-get install chromium failed; see the lines above"
  fi
fi
if [ ! -x "$CHROMIUM" ]; then
  cannot "apt-get installed chromium but $CHROMIUM is missing"
fi
echo "setup_browser: $("$CHROMIUM" --version 2>/dev/null) installed in $(($(date +%s) - start))s"
