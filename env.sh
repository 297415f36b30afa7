# Sourced by setup.sh and the Makefile: keep what libraries write (settings, font caches)
# inside the repository instead of the user's home, and keep tests offline-safe.
AQA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export AQA_CACHE_DIR="${AQA_CACHE_DIR:-$AQA_ROOT/.cache}"
export YOLO_CONFIG_DIR="${YOLO_CONFIG_DIR:-$AQA_CACHE_DIR/ultralytics}"
export MPLCONFIGDIR="${MPLCONFIGDIR:-$AQA_CACHE_DIR/matplotlib}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
mkdir -p "$YOLO_CONFIG_DIR" "$MPLCONFIGDIR"
