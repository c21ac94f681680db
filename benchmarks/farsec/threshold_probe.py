"""Issue 15 probe (2026-12-03; from the repository root: python benchmarks/farsec/threshold_probe.py VARIANT, with
VARIANT word (tfidf, C 1) or title (tfidf-title, C 1, title weight 0.5)).  Does a threshold fitted on out-of-fold
scores transfer to a refitted model?  On FARSEC Chromium's training half alone (the test half is never read): outer
5 folds; on each outer training part a 5-fold out-of-fold threshold (best g) and a refit; the outer held-out part's
pf / pd / g at that threshold, against the inner out-of-fold pf.  One line per outer fold to threshold_probe.jsonl."""
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from transferlab.bench.farsec import POSITIVE, load
from transferlab.bench.peers import tfidf_vectorizer
from transferlab.encoders.tfidf import with_title
from transferlab.evaluation.decision import Rule, choose_threshold
from transferlab.evaluation.metrics import imbalance_metrics

variant = sys.argv[1]
title_weight = {"word": 0.0, "title": 0.5}[variant]
d = load("../shared/data/security/farsec_chromium.csv.gz")
texts = d.train.texts + d.validation.texts
y = np.array([lab == POSITIVE for lab in d.train.labels + d.validation.labels])


def fit(tr_texts, tr_y):
    vec = with_title(tfidf_vectorizer(max_features=200_000), title_weight, len(tr_texts))
    clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=3000).fit(vec.fit_transform(tr_texts), tr_y)
    return lambda te: clf.decision_function(vec.transform(te))


for o, (otr, ote) in enumerate(StratifiedKFold(5, shuffle=True, random_state=7).split(np.zeros(len(y)), y)):
    T, Y, TE, YE = [texts[i] for i in otr], y[otr], [texts[i] for i in ote], y[ote]
    oof = np.zeros(len(Y))
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=13).split(np.zeros(len(Y)), Y):
        oof[te] = fit([T[i] for i in tr], Y[tr])([T[i] for i in te])
    thr = choose_threshold(Y, oof, Rule("g"), name="security")["threshold"]
    inner = imbalance_metrics(Y, oof >= thr, oof)
    s = fit(T, Y)(TE)
    outer = imbalance_metrics(YE, s >= thr, s)
    row = {"variant": variant, "fold": o, "inner_pf": round(inner["pf"], 4), "refit_pf": round(outer["pf"], 4),
           "refit_pd": round(outer["pd"], 4), "refit_g": round(outer["g_measure"], 4)}
    print(json.dumps(row), flush=True)
    with open(Path(__file__).with_name("threshold_probe.jsonl"), "a") as f:
        f.write(json.dumps(row) + "\n")
