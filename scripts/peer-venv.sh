#!/usr/bin/env bash
# A second virtual environment for the speed benchmark's sentence-transformers ONNX peer: its ONNX backend needs
# optimum-onnx, which requires transformers < 4.58, while TransferLab runs on transformers 5.  The peer runs there,
# in a subprocess of `transferlab bench speed --peer-python .venv-peers/bin/python`, on the same texts and cores.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-peers}
${PYTHON:-python3} -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" torch==2.13.0
"${PIP[@]}" "sentence-transformers>=5.0,<6" "optimum-onnx[onnxruntime]==0.1.0" psutil
"$VENV/bin/python" -c "import sentence_transformers, optimum.onnxruntime, transformers; print('peer venv:', sentence_transformers.__version__, transformers.__version__)"
