#!/usr/bin/env bash
# The test command of the README.  Tests that need ../shared/data skip themselves when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export TRANSFERLAB_CACHE="${TRANSFERLAB_CACHE:-$(mktemp -d)}"
exec ${PYTHON:-python3} -m pytest -q -p no:cacheprovider "$@"
