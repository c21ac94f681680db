"""Issue 15 probe (2026-12-03; from the repository root: python benchmarks/farsec/title_matomo_probe.py).  Does the
title block help on the early-warning stage-1 data?  Training: Matomo issues before 2018 + all of FARSEC Chromium;
validation: Matomo 2018-2019 (the test period, 2020-2022, is not scored).  TF-IDF + logistic regression with
title weight 0 / 0.5 / 1 and C 0.3 / 1 / 3; validation PR-AUC and recall at 1% FPR."""
import json

import numpy as np
from sklearn.linear_model import LogisticRegression

from transferlab.bench.peers import tfidf_vectorizer
from transferlab.encoders.tfidf import with_title
from transferlab.evaluation.metrics import imbalance_metrics
from transferlab.vuln.labels import SECURITY, stage1

p = stage1()
y = np.array([lab == SECURITY for lab in p.train.labels])
yv = np.array([lab == SECURITY for lab in p.validation.labels])
for tw in (0.0, 0.5, 1.0):
    for C in (0.3, 1.0, 3.0):
        vec = with_title(tfidf_vectorizer(max_features=200_000), tw, len(y))
        clf = LogisticRegression(C=C, class_weight="balanced", max_iter=3000).fit(vec.fit_transform(p.train.texts), y)
        s = clf.decision_function(vec.transform(p.validation.texts))
        m = imbalance_metrics(yv, s >= 0, s)
        print(json.dumps({"title_weight": tw, "C": C, "val_pr_auc": round(m["pr_auc"], 4),
                          "val_r1": round(m["recall_at_fpr"]["0.01"], 4)}), flush=True)
