"""Issue 15 probe (2026-12-03; from the repository root: python benchmarks/farsec/title_probe.py NAME,NAME,...).
FARSEC Chromium, TF-IDF + LR variants chosen by 5-fold CV on the training half (same folds as char_probe);
test scored once per variant, for the record."""
import html, json, re, sys, time
from pathlib import Path
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
TITLE = re.compile(r"<title>\s*Issue\s+\d+\s*-\s*chromium\s*-\s*(.*?)\s*-\s*Project Hosting on Google Code\s*</title>", re.S | re.I)
def title(t):
    m = TITLE.search(t); return html.unescape(m.group(1)) if m else ""
GTITLE = re.compile(r"^\s*<title>(.*?)</title>", re.S | re.I)
def gtitle(t):
    m = GTITLE.match(t)
    return html.unescape(m.group(1)) if m else t.split("\n", 1)[0][:500]
def gw(k=None):
    return lambda: TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_df=0.5, sublinear_tf=True,
                                   strip_accents="unicode", preprocessor=lambda t: gtitle(t).lower())
def clean(t):
    return html.unescape(TITLE.sub(lambda m: m.group(1), t)).replace("<pre>", " ").replace("</pre>", " ")

def w(ng=2, mf=200_000, pre=None):
    return lambda: TfidfVectorizer(ngram_range=(1, ng), min_df=2, max_features=mf, sublinear_tf=True,
                                   strip_accents="unicode", preprocessor=pre)
def c(pre):
    return lambda: TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True,
                                   strip_accents="unicode", preprocessor=pre)
lower = lambda f: (lambda t: f(t).lower())
VARIANTS = {
    "word12-C1": ([w()], 1.0), "word12-C0.3": ([w()], 0.3), "word12-C3": ([w()], 3.0),
    "word13-C1": ([w(3, 300_000)], 1.0), "word12-all-C1": ([w(2, None)], 1.0),
    "word12-title-C1": ([w(), w(2, None, lower(title))], 1.0),
    "word12-title-C0.3": ([w(), w(2, None, lower(title))], 0.3), "word12-title-C3": ([w(), w(2, None, lower(title))], 3.0),
    "word12-title2-C1": ([w(), (w(2, None, lower(title)), 2.0)], 1.0),
    "word12-title0.5-C1": ([w(), (w(2, None, lower(title)), 0.5)], 1.0),
    "word12-title-chartitle-C1": ([w(), w(2, None, lower(title)), c(lower(title))], 1.0),
    "word12-gtitle0.5-C1": ([w(), (gw(), 0.5)], 1.0), "word12-gtitle1-C1": ([w(), gw()], 1.0),
    "word12-gtitle0.5-C3": ([w(), (gw(), 0.5)], 3.0), "word12-gtitle0.5-C0.3": ([w(), (gw(), 0.5)], 0.3),
    "clean-title-C1": ([w(2, 200_000, lower(clean)), w(2, None, lower(title))], 1.0), "word12-clean-C1": ([w(2, 200_000, lower(clean))], 1.0),
}
def fit_score(name, tr_texts, tr_y, te_texts):
    makers, C = VARIANTS[name]
    a, b = [], []
    for make in makers:
        make, k = make if isinstance(make, tuple) else (make, 1.0)
        v = make(); a.append(k * v.fit_transform(tr_texts)); b.append(k * v.transform(te_texts))
    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=3000).fit(sp.hstack(a).tocsr(), tr_y)
    return clf.decision_function(sp.hstack(b).tocsr())

skf = list(StratifiedKFold(5, shuffle=True, random_state=13).split(np.zeros(len(y)), y))
for name in sys.argv[1].split(","):
    t0 = time.time()
    oof = np.zeros(len(y))
    for tr, te in skf:
        oof[te] = fit_score(name, [texts[i] for i in tr], y[tr], [texts[i] for i in te])
    m = imbalance_metrics(y, oof >= 0, oof)
    thr = choose_threshold(y, oof, Rule("g"), name="security")["threshold"]
    mo = imbalance_metrics(y, oof >= thr, oof)
    s = fit_score(name, texts, y, d.test.texts)
    t = imbalance_metrics(yt, s >= thr, s)
    row = {"variant": name, "cv_pr_auc": round(m["pr_auc"], 4), "cv_r1": round(m["recall_at_fpr"]["0.01"], 4),
           "cv_g": round(mo["g_measure"], 4), "test_pr_auc": round(t["pr_auc"], 4),
           "test_r1": round(t["recall_at_fpr"]["0.01"], 4), "test_g": round(t["g_measure"], 4),
           "test_pd": round(t["pd"], 4), "test_pf": round(t["pf"], 4), "s": round(time.time() - t0)}
    print(json.dumps(row), flush=True)
    with open(Path(__file__).with_name("title_probe.jsonl"), "a") as f: f.write(json.dumps(row) + "\n")
