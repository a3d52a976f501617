#!/usr/bin/env bash
# Renders a vog HTML report in headless Chromium and saves a screenshot, to check the page
# as a person sees it. Usage: scripts/screenshot_report.sh REPORT.html OUT.png [HEIGHT]
# Needs Debian's chromium (apt-get install chromium); the test suite checks the HTML's
# structure without a browser.
set -euo pipefail
report=$(realpath "$1")
out=$(realpath -m "$2")
height=${3:-6000}
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size=1400,"$height" \
  --screenshot="$out" "file://$report" 2>/dev/null
echo "$out"
