#!/usr/bin/env bash
# One-time set-up on a fresh machine.  torch is pinned first: an unpinned install would pull several GB
# of CUDA packages where a CPU build is wanted (elsewhere the same pin gives the normal PyPI wheel).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
$PY -m pip install --quiet --disable-pip-version-check torch==2.13.0
$PY -m pip install --quiet --disable-pip-version-check -e ".[models,test]"
