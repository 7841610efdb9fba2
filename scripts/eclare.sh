#!/usr/bin/env bash
# ECLARE (Remedios et al., SASHIMI 2023; PyPI eclare 1.0.1, GPL-3), the SMORE authors' successor,
# scored on benchsr's through-plane track as an outside model:
#   1. builds ECLARE in its own virtual environment (it pins scipy 1.11.4 and radifox-utils
#      1.0.3, so it never enters benchsr's);
#   2. exports every evaluation slab's thick stack (benchsr export-inputs, NIfTI with its geometry);
#   3. runs run-eclare on each on the CPU, timed;
#   4. scores the outputs with benchsr evaluate (ECLARE writes a finer z grid, at the in-plane
#      spacing: evaluate brings it to the thin grid by the mean over each thin slice's extent).
#
# usage: scripts/eclare.sh OUT [--profile P] [--set KEY=VALUE ...]   (benchsr's own options;
#        data.plane=through is added)
# env:   N_PATCHES (default 2000: ECLARE's default of 1,000,000 takes hours per stack on 2 cores)
#        ESPRESO=1 lets ECLARE estimate the slice profile itself (about 4 more minutes per stack
#        on 2 idle cores); by default it is given the protocol's own profile, a rect as thick as
#        the thick slice (--relative-slice-thickness thick/in-plane), and the row says so.
#        ECLARE_VENV (default .eclare-venv), BENCHSR (default .venv/bin/benchsr), RESULTS
#        (default results).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: scripts/eclare.sh OUT [benchsr options]" >&2; exit 2; }
OUT=$1; shift
N_PATCHES=${N_PATCHES:-2000}
VENV=${ECLARE_VENV:-.eclare-venv}
BENCHSR=${BENCHSR:-.venv/bin/benchsr}
RESULTS=${RESULTS:-results}
[ -e "$OUT" ] && { echo "$OUT: exists; give a new folder" >&2; exit 2; }

if [ ! -x "$VENV/bin/run-eclare" ]; then
  echo "building ECLARE in $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check eclare==1.0.1
fi

"$BENCHSR" export-inputs "$OUT/inputs" --set data.plane=through "$@"
mkdir -p "$OUT/raw" "$OUT/pred"
TAG=$([ "${ESPRESO:-0}" = 1 ] && echo "espreso" || echo "profile-given")
echo "slab,seconds,relative_thickness,profile" > "$OUT/timing.csv"
python3 - "$OUT/inputs/manifest.json" > "$OUT/stacks.txt" <<'EOF'
import json, sys
for e in json.load(open(sys.argv[1]))["inputs"]:
    s = e["thick_lps"]["spacing"]
    print(e["name"], e["file"], round(s[2] / min(s[0], s[1]), 3))
EOF
while read -r name file rel; do
  extra=()
  [ "$TAG" = "profile-given" ] && extra=(--relative-slice-thickness "$rel" --relative-slice-profile-type rect)
  start=$(date +%s.%N)
  "$VENV/bin/run-eclare" --in-fpath "$OUT/inputs/$file" --out-dir "$OUT/raw" --gpu-id -1 \
    --n-patches "$N_PATCHES" --batch-size 32 "${extra[@]}" > "$OUT/raw/$name.log" 2>&1 \
    || { echo "run-eclare failed on $name: see $OUT/raw/$name.log" >&2; exit 1; }
  secs=$(python3 -c "import time; print(round(time.time() - $start, 1))")
  echo "$name,$secs,$rel,$TAG" >> "$OUT/timing.csv"
  echo "$name: ${secs} s"
  cp "$OUT/raw/${name}_eclare.nii.gz" "$OUT/pred/$name.nii.gz"
done < "$OUT/stacks.txt"

"$BENCHSR" evaluate "$OUT/pred" --name "eclare-np${N_PATCHES}-${TAG}" --set data.plane=through \
  "$@" --out "$RESULTS"
