"""FARSEC Chromium: word 1-2-gram TF-IDF (shipped) vs char_wb n-grams vs both, chosen by 5-fold CV on the training
half (pooled out-of-fold PR-AUC / recall@1%FPR); the test half is scored once per variant, for the record."""
import json, sys, time
import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from transferlab.bench.farsec import load, POSITIVE
from transferlab.evaluation.metrics import imbalance_metrics
from transferlab.evaluation.decision import Rule, choose_threshold

d = load("../shared/data/security/farsec_chromium.csv.gz")
texts = d.train.texts + d.validation.texts
y = np.array([l == POSITIVE for l in d.train.labels + d.validation.labels])
yt = np.array([l == POSITIVE for l in d.test.labels])
print(len(texts), y.sum(), len(d.test.texts), yt.sum(), flush=True)

def vecs(kind):
    w = lambda: TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=200_000, sublinear_tf=True, strip_accents="unicode")
    c = lambda: TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, max_features=300_000, sublinear_tf=True, strip_accents="unicode")
    return {"word": [w], "char": [c], "word+char": [w, c]}[kind]

def fit_score(kind, C, tr_texts, tr_y, te_texts):
    mats_tr, mats_te = [], []
    for make in vecs(kind):
        v = make(); mats_tr.append(v.fit_transform(tr_texts)); mats_te.append(v.transform(te_texts))
    Xtr, Xte = sp.hstack(mats_tr).tocsr(), sp.hstack(mats_te).tocsr()
    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=3000).fit(Xtr, tr_y)
    return clf.decision_function(Xte)

rows = []
skf = list(StratifiedKFold(5, shuffle=True, random_state=13).split(np.zeros(len(y)), y))
for kind in sys.argv[1].split(","):
    for C in (1.0, 10.0):
        t0 = time.time()
        oof = np.zeros(len(y))
        for tr, te in skf:
            oof[te] = fit_score(kind, C, [texts[i] for i in tr], y[tr], [texts[i] for i in te])
        m = imbalance_metrics(y, oof >= 0, oof)
        thr = choose_threshold(y, oof, Rule("g"), name="security")["threshold"]
        s = fit_score(kind, C, texts, y, d.test.texts)
        t = imbalance_metrics(yt, s >= thr, s)
        row = {"kind": kind, "C": C, "cv_pr_auc": round(m["pr_auc"], 4), "cv_r1": m["recall_at_fpr"]["0.01"],
               "test_pr_auc": round(t["pr_auc"], 4), "test_r1": t["recall_at_fpr"]["0.01"], "test_g": round(t["g_measure"], 4),
               "test_pd": round(t["pd"], 4), "test_pf": round(t["pf"], 4), "s": round(time.time() - t0)}
        rows.append(row); print(row, flush=True)
json.dump(rows, open("benchmarks/farsec/char_probe.json", "w"), indent=1)
