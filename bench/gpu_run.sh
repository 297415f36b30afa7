#!/usr/bin/env bash
# Every GPU benchmark in as few device calls as the 64 MiB carry limit allows.
#
# The GPU machine has torch, numpy, scipy, h5py, opencv, matplotlib and pytest but lacks decord,
# av and ultralytics (see docs/benchmarks.md, "Running on the GPU machine"). Carry them as cp312
# wheels in .whl/ (about 52 MB). The I3D weights file (51 MB) does not fit beside them, so a
# stage that needs real I3D weights runs in a second call that carries .i3d/ while the first
# call's install (.site/, inside the checkout) is still on the warm machine.
#
#   bash bench/gpu_run.sh install    # call 1, carry [".whl"]: install into .site/, then "videos"
#   bash bench/gpu_run.sh weights    # call 2 right after (a machine stays warm ~30 s), carry [".i3d"]
#   bash bench/gpu_run.sh heads      # any call: needs no wheels
#
# Stages (each fits one 10-minute call): videos = decoding and detection, extraction with a free
# backbone, random-weight I3D and Swin-B against the naive baseline; weights = extraction with the
# real I3D file and aqa-predict latency; heads = FSPN forward, training speed, the gpu tests.
# JSON lines land in $OUT; log.txt keeps the tail of every step.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/aqa-bench}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 AQA_CACHE_DIR=/tmp/aqa-cache YOLO_OFFLINE=1 PYTHONPATH="$PWD/.site:$PWD"
I3D=.i3d/i3d-kinetics-400.ckpt

log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
step() {  # step NAME SECONDS COMMAND...: run with a time limit, keep going if it fails
    local name=$1 limit=$2
    shift 2
    log "$name"
    timeout "$limit" "$@" 2>&1 | tail -n 40 | tee -a "$OUT/log.txt"
    log "$name: exit ${PIPESTATUS[0]}"
}

install() {
    ls .whl/*.whl >/dev/null 2>&1 || { echo "no wheels in .whl/ (carry it)"; exit 2; }
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .site .whl/*.whl
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
    python3 -c "import torch, decord, av, ultralytics; print('torch', torch.__version__, 'decord', decord.__version__, \
'av', av.__version__, 'ultralytics', ultralytics.__version__)" | tee -a "$OUT/gpu.txt"
}

videos() {
    step decode 150 python3 bench/decode.py --processes 1,8,16 --frames 900 --out "$OUT/decode.jsonl"
    step extract 360 python3 bench/extract.py --device cuda --backbones none,i3d,swin3d_b --random-i3d --videos 16 \
        --frames 900 --naive-videos 2 --workers 16 --clips-per-batch 16 --memory-frames 3600 --out "$OUT/extract.jsonl"
    step gpu-tests 60 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_extract.py
}

heads() {
    step fspn 200 python3 bench/fspn.py --device cuda --lengths 1,9,10,103,300 --batches 1,8,32 --repeats 20 \
        --out "$OUT/fspn.jsonl"
    step train 240 python3 bench/train.py --device cuda --epochs 10 --rounds 3 --out "$OUT/train.jsonl"
    step gpu-tests 120 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_train.py
}

weights() {
    [ -f "$I3D" ] || { echo "no $I3D (carry .i3d)"; exit 2; }
    step extract-real 240 python3 bench/extract.py --device cuda --backbones i3d --modes pipeline --i3d-weights "$I3D" \
        --videos 16 --frames 900 --workers 16 --clips-per-batch 16 --out "$OUT/extract.jsonl"
    step predict 300 python3 bench/predict.py --device cuda --workers 16 --i3d-weights "$I3D" --out "$OUT/predict.jsonl"
}

case "${1:-}" in
    install) install && videos ;;
    videos) videos ;;
    weights) weights ;;
    heads) heads ;;
    *) echo "usage: bash bench/gpu_run.sh install|videos|weights|heads"; exit 2 ;;
esac
