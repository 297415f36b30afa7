#!/usr/bin/env bash
# The aqa-app browser test (tests/test_app_browser.py) drives Debian's chromium through its
# chromedriver. Install both when they are missing; where that is impossible (no root, no apt,
# no reachable package mirror) say so and go on: the test then skips with its reason.
set -uo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ci: chromium/chromedriver are missing and this user cannot apt-get them; the browser test will skip"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
LOG="${TMPDIR:-/tmp}/aqa-browser-install.log"
# Without a reachable mirror apt must give up in seconds, not retry for minutes.
APT=(timeout 900 apt-get -y -q -o Acquire::http::Timeout=20 -o Acquire::https::Timeout=20 -o Acquire::Retries=1)
echo "ci: installing chromium and chromium-driver for the browser test (log: $LOG)"
if ! "${APT[@]}" install chromium chromium-driver >"$LOG" 2>&1; then
  # Stale package lists are the usual cause: refresh them once and retry.
  if ! { "${APT[@]}" update && "${APT[@]}" install chromium chromium-driver; } >>"$LOG" 2>&1; then
    tail -n 5 "$LOG"
    echo "ci: could not install chromium; the browser test will skip"
  fi
fi
exit 0
