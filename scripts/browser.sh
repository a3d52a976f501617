#!/usr/bin/env bash
# Installs what the browser tests drive, when missing: Debian's chromium and
# chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver). Needs root (or sudo) to
# install; does nothing when both are there.
set -euo pipefail
command -v chromium >/dev/null && command -v chromedriver >/dev/null && exit 0
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
$sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >"$log" 2>&1 ||
    { $sudo apt-get update -qq >>"$log" 2>&1 &&
      $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >>"$log" 2>&1; } ||
    { echo "error: cannot install chromium and chromium-driver for the browser tests: $(tail -n 1 "$log")" >&2; exit 1; }
echo "installed $(chromium --version 2>/dev/null) and chromedriver for the browser tests"
