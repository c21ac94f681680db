"""Issue 15 probe (2026-12-03; from the repository root: python benchmarks/farsec/finetune_probe.py [NEGATIVES]).

A fine-tuned MiniLM on FARSEC Chromium within a CPU budget, alone and averaged with the `tfidf-title` family.
Why a probe and not the `minilm-finetune` family run through `bench farsec`: that family trains on the whole
training part (16,833 reports) for 2 epochs and 2 settings; at the 4 samples/s measured for MiniLM training at 256
tokens on this 2-vCPU machine that is about 4.7 hours. Here it trains on every security report of the training
part plus NEGATIVES (default 3,000) random others (random undersampling, a standard move with rare positives),
2 epochs, bf16 autocast, class weights "auto", one setting.

Everything is chosen on the validation part (20 security reports), as `bench farsec --selection holdout` does:
the epoch (by PR-AUC), each candidate's threshold (best validation g), and which of the three candidates
(fine-tuned MiniLM, tfidf-title with its holdout-chosen setting C 0.3 / title 0.5, their mean log-odds) is chosen
(validation g, PR-AUC breaking ties). The test half is scored once per candidate for the record; the chosen one is
named in the row. Rows go to finetune_probe.jsonl; the scores to runs/finetune-probe/ (not committed).
"""
import json
import sys
import time
from pathlib import Path

import numpy as np

from transferlab.bench.farsec import FAMILIES, POSITIVE, _fitter, load
from transferlab.evaluation.decision import Rule, choose_threshold
from transferlab.evaluation.metrics import imbalance_metrics

NEGATIVES = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
SEED = 13
OUT = Path("runs/finetune-probe")
OUT.mkdir(parents=True, exist_ok=True)

d = load("../shared/data/security/farsec_chromium.csv.gz", seed=SEED)
labels = np.asarray(d.train.labels)
pos = np.flatnonzero(labels == POSITIVE)
neg = np.random.default_rng(SEED).choice(np.flatnonzero(labels != POSITIVE), NEGATIVES, replace=False)
train = d.train.subset(sorted(pos.tolist() + neg.tolist()))
yv = np.asarray([lab == POSITIVE for lab in d.validation.labels])
yt = np.asarray([lab == POSITIVE for lab in d.test.labels])
print(f"training part: {len(pos)} security + {NEGATIVES} others; validation {len(yv)} ({yv.sum()}); "
      f"test {len(yt)} ({yt.sum()})", flush=True)

scores = {}
t0 = time.perf_counter()
tfidf_fn, _ = _fitter(FAMILIES["tfidf-title"], {"C": 0.3, "class_weight": "balanced", "title_weight": 0.5},
                      SEED, "cpu")(d.train, d.validation)
scores["tfidf-title"] = (tfidf_fn(d.validation.texts), tfidf_fn(d.test.texts))
seconds = {"tfidf-title": round(time.perf_counter() - t0)}

family = {"kind": "transferlab",
          "model": {"encoder": "minilm", "strategy": "finetune", "max_length": 256, "truncation": "head+tail"},
          "train": {"epochs": 2, "metric": "pr_auc", "precision": "bf16"}}
t0 = time.perf_counter()
ft_fn, model = _fitter(family, {"class_weight": "auto"}, SEED, "cpu")(train, d.validation,
                                                                      OUT / f"minilm-neg{NEGATIVES}")
scores["minilm-finetune"] = (ft_fn(d.validation.texts), ft_fn(d.test.texts))
seconds["minilm-finetune"] = round(time.perf_counter() - t0)


def logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


scores["mean-logit"] = tuple((logit(a) + logit(b)) / 2 for a, b in zip(scores["tfidf-title"],
                                                                      scores["minilm-finetune"]))
rows = []
for name, (v, t) in scores.items():
    np.save(OUT / f"{name}-neg{NEGATIVES}-validation.npy", v)
    np.save(OUT / f"{name}-neg{NEGATIVES}-test.npy", t)
    thr = choose_threshold(yv, v, Rule("g"), name="security")["threshold"]
    mv, mt = imbalance_metrics(yv, v >= thr, v), imbalance_metrics(yt, t >= thr, t)
    rows.append({"candidate": name, "negatives": NEGATIVES, "val_g": round(mv["g_measure"], 4),
                 "val_pr_auc": round(mv["pr_auc"], 4), "test_g": round(mt["g_measure"], 4),
                 "test_pd": round(mt["pd"], 4), "test_pf": round(mt["pf"], 4), "test_pr_auc": round(mt["pr_auc"], 4),
                 "test_r1": round(mt["recall_at_fpr"]["0.01"], 4), "seconds": seconds.get(name)})
chosen = max(rows, key=lambda r: (r["val_g"], r["val_pr_auc"]))["candidate"]
with open(Path(__file__).with_name("finetune_probe.jsonl"), "a") as f:
    for row in rows:
        row["chosen_on_validation"] = row["candidate"] == chosen
        print(json.dumps(row), flush=True)
        f.write(json.dumps(row) + "\n")
