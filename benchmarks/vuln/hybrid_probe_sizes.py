"""Probe 2: shippable hybrids (size of what the model folder must carry) by validation PR-AUC."""
import json
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.decomposition import TruncatedSVD
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.metrics import average_precision_score, roc_curve
from transferlab.vuln import labels as L
from transferlab.bench.peers import tfidf_vectorizer
from transferlab.encoders.sentence import SentenceEncoder
from transferlab.encoders.zoo import resolve

p = L.stage1(None, farsec=True, max_farsec_negatives=3000, seed=13)
tr, va, te = p.train, p.validation, p.test
y = {k: np.array([l == L.SECURITY for l in part.labels]) for k, part in (("tr", tr), ("va", va), ("te", te))}
enc = SentenceEncoder(resolve("minilm"), max_length=128, long_document="head+tail")
E = {k: enc.encode(part.texts) for k, part in (("tr", tr), ("va", va), ("te", te))}
def r1(yy, s):
    fpr, tpr, _ = roc_curve(yy, s); return float(np.interp(0.01, fpr, tpr))
res = []
def report(name, s_va, s_te, mb):
    out = {"name": name, "carried_mb": round(mb, 1), "val_pr_auc": round(average_precision_score(y["va"], s_va), 3),
           "test_pr_auc": round(average_precision_score(y["te"], s_te), 3), "test_r@1%fpr": round(r1(y["te"], s_te), 3)}
    print(json.dumps(out), flush=True); res.append(out)
lr = lambda C: LogisticRegression(C=C, class_weight="balanced", max_iter=3000)
unit = lambda z: z / np.clip(np.linalg.norm(z, axis=1, keepdims=True), 1e-12, None)
for mf in (5000, 8000, 20000):
    vec = tfidf_vectorizer(min_df=2, max_features=mf)
    X = {"tr": vec.fit_transform(tr.texts)}; X["va"] = vec.transform(va.texts); X["te"] = vec.transform(te.texts)
    nf = X["tr"].shape[1]
    for k in (100, 300):
        svd = TruncatedSVD(k, random_state=13).fit(X["tr"])
        Z = {s: unit(X[s] @ svd.components_.T) for s in X}
        m = lr(1.0).fit(np.hstack([E["tr"], Z["tr"]]), y["tr"])
        report(f"lsa{k} max_features={mf}", m.decision_function(np.hstack([E["va"], Z["va"]])),
               m.decision_function(np.hstack([E["te"], Z["te"]])), k * nf * 4 / 2**20 + nf * 20 / 2**20)
vec = tfidf_vectorizer(min_df=2, max_features=200_000)
X = {"tr": vec.fit_transform(tr.texts)}; X["va"] = vec.transform(va.texts); X["te"] = vec.transform(te.texts)
nf = X["tr"].shape[1]
oof = cross_val_predict(lr(1.0), X["tr"], y["tr"], cv=StratifiedKFold(5, shuffle=True, random_state=13), method="decision_function")
mt = lr(1.0).fit(X["tr"], y["tr"])
for w in (0.3, 1.0):
    for C in (0.3, 1.0):
        f = lambda e, s: np.hstack([e, w * s[:, None]])
        m = lr(C).fit(f(E["tr"], oof), y["tr"])
        report(f"stack w={w} C={C} (full vocabulary {nf})", m.decision_function(f(E["va"], mt.decision_function(X["va"]))),
               m.decision_function(f(E["te"], mt.decision_function(X["te"]))), nf * 8 / 2**20 + nf * 20 / 2**20)
json.dump(res, open("benchmarks/vuln/hybrid_probe_sizes.json", "w"), indent=1)
