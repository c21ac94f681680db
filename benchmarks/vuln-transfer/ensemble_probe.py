"""Stage 1 of several cascades, and averages of their ranks, on the Matomo time split: chosen on validation only.

    python benchmarks/vuln-transfer/ensemble_probe.py NAME=CASCADE_DIR ... --out benchmarks/vuln-transfer/ensemble.json

Each cascade's stage-1 model scores the validation period (2018-2019) and the test period (2020-2022) once; every
pair and the whole set are then combined by averaging the ranks of their security scores (scores from differently
calibrated models are not comparable, ranks are).  For each single model and combination: PR-AUC and recall at 1%
false-positive rate on validation and test.  The rule is the issue's: choose on validation, read test once.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, roc_curve


def recall_at_fpr(truth: np.ndarray, score: np.ndarray, fpr_max: float = 0.01) -> float:
    fpr, tpr, _ = roc_curve(truth, score)
    return float(tpr[fpr <= fpr_max].max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cascades", nargs="+", help="NAME=CASCADE_DIR")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    from transferlab.vuln import labels as L
    from transferlab.vuln.cascade import Cascade

    parts = L.stage1(a.data_dir, farsec=False)
    truth = {p: np.asarray([lab == L.SECURITY for lab in getattr(parts, p).labels]) for p in ("validation", "test")}
    scores = {}
    for spec in a.cascades:
        name, folder = spec.split("=", 1)
        model = Cascade.load(folder).stage1
        j = model.labels_.index(L.SECURITY)
        scores[name] = {p: model.decision_function(getattr(parts, p))[:, j] for p in ("validation", "test")}
        print(f"scored {name}", flush=True)
    rows = []
    names = list(scores)
    combos = [(n,) for n in names] + [c for k in range(2, len(names) + 1) for c in itertools.combinations(names, k)]
    for combo in combos:
        row = {"members": list(combo)}
        for p in ("validation", "test"):
            s = np.mean([rankdata(scores[n][p]) / len(scores[n][p]) for n in combo], axis=0)
            row[p] = {"pr_auc": float(average_precision_score(truth[p], s)),
                      "recall_at_1pct_fpr": recall_at_fpr(truth[p], s)}
        rows.append(row)
    best = max(rows, key=lambda r: r["validation"]["pr_auc"])
    result = {"rows": rows, "chosen_on_validation": best["members"],
              "n": {p: int(len(truth[p])) for p in truth}, "positives": {p: int(truth[p].sum()) for p in truth}}
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for r in rows:
        print(f"{'+'.join(r['members']):60s} val {r['validation']['pr_auc']:.3f} / {100 * r['validation']['recall_at_1pct_fpr']:.1f}"
              f"   test {r['test']['pr_auc']:.3f} / {100 * r['test']['recall_at_1pct_fpr']:.1f}")
    print("chosen on validation:", "+".join(best["members"]))


if __name__ == "__main__":
    main()
