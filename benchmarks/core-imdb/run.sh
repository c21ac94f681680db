#!/usr/bin/env bash
# Issue 2 acceptance: one model per family on the IMDB seed protocol, trained with the CLI.
# OUT=folder (default runs/core-imdb).  FULL=1 runs the transformer rows on the whole protocol
# (train 5k, validation 5k, test 40k, 3 epochs); the default is the reduced CPU setting recorded in
# results.md (validation and test subsets for the transformer rows), about 1.5 hours on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
D=${DATA:-../shared/data/imdb/movie_reviews.csv.bz2}
OUT=${OUT:-runs/core-imdb}
C=(--data "$D" --text-col review --label-col sentiment --split seed)
E=(--data "$D" --text-col review --label-col sentiment --split seed:test)
export TOKENIZERS_PARALLELISM=false
if [ "${FULL:-0}" = 1 ]; then
  FROZEN_VAL=(); FT=(--epochs 3)
else
  FROZEN_VAL=(--max-validation 1000); FT=(--max-validation 1000 --epochs 2)
fi
transferlab train "${C[@]}" --encoder glove-50d --head cnn --test --out "$OUT/cnn"
transferlab train "${C[@]}" --encoder minilm --strategy frozen --truncation chunks "${FROZEN_VAL[@]}" --out "$OUT/frozen"
transferlab evaluate "$OUT/frozen" "${E[@]}" $( [ "${FULL:-0}" = 1 ] || echo --limit 8000 ) --report "$OUT/frozen/test.json"
transferlab train "${C[@]}" --encoder minilm --strategy finetune --max-length 256 "${FT[@]}" --out "$OUT/ft"
transferlab evaluate "$OUT/ft" "${E[@]}" $( [ "${FULL:-0}" = 1 ] || echo --limit 4000 ) --report "$OUT/ft/test.json"
