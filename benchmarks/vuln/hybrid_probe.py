"""Stage-1 probe (Matomo time split + FARSEC, as vuln train builds it): which combination of the frozen MiniLM
embedding and TF-IDF reaches the best validation PR-AUC, and what it gives on test.  Not shipped code: a probe
to choose what the hybrid family should be."""
import json, time
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
t = time.time()
E = {k: enc.encode(part.texts, show_progress=True) for k, part in (("tr", tr), ("va", va), ("te", te))}
print("encoded in", round(time.time() - t), "s", flush=True)
def r1(yy, s):
    fpr, tpr, _ = roc_curve(yy, s); return float(np.interp(0.01, fpr, tpr))
def report(name, s_va, s_te):
    out = {"name": name, "val_pr_auc": round(average_precision_score(y["va"], s_va), 3),
           "test_pr_auc": round(average_precision_score(y["te"], s_te), 3),
           "test_r@1%fpr": round(r1(y["te"], s_te), 3), "val_r@1%fpr": round(r1(y["va"], s_va), 3)}
    print(json.dumps(out), flush=True); return out
vec = tfidf_vectorizer(min_df=2, max_features=200_000)
X = {"tr": vec.fit_transform(tr.texts)}; X["va"] = vec.transform(va.texts); X["te"] = vec.transform(te.texts)
lr = lambda C: LogisticRegression(C=C, class_weight="balanced", max_iter=3000)
res = []
for C in (0.3, 1.0, 3.0):
    m = lr(C).fit(E["tr"], y["tr"]); res.append(report(f"minilm C={C}", m.decision_function(E["va"]), m.decision_function(E["te"])))
mt = lr(1.0).fit(X["tr"], y["tr"]); res.append(report("tfidf C=1", mt.decision_function(X["va"]), mt.decision_function(X["te"])))
# stacking: out-of-fold TF-IDF logit as a feature beside the embedding
oof = cross_val_predict(lr(1.0), X["tr"], y["tr"], cv=StratifiedKFold(5, shuffle=True, random_state=13), method="decision_function")
for w in (0.1, 0.3, 1.0):
    f = lambda e, s: np.hstack([e, w * s[:, None]])
    for C in (0.3, 1.0, 3.0):
        m = lr(C).fit(f(E["tr"], oof), y["tr"])
        res.append(report(f"stack oof w={w} C={C}", m.decision_function(f(E["va"], mt.decision_function(X["va"]))), m.decision_function(f(E["te"], mt.decision_function(X["te"])))))
# score fusion: mean of z-scored logits
m1 = lr(1.0).fit(E["tr"], y["tr"])
z = lambda s, ref: (s - ref.mean()) / ref.std()
for a in (0.3, 0.5, 0.7):
    sva = a * z(m1.decision_function(E["va"]), m1.decision_function(E["tr"])) + (1 - a) * z(mt.decision_function(X["va"]), oof)
    ste = a * z(m1.decision_function(E["te"]), m1.decision_function(E["tr"])) + (1 - a) * z(mt.decision_function(X["te"]), oof)
    res.append(report(f"fusion a={a}", sva, ste))
# LSA concat
for k in (300,):
    svd = TruncatedSVD(k, random_state=13).fit(X["tr"])
    Z = lambda M: (lambda q: q / np.clip(np.linalg.norm(q, axis=1, keepdims=True), 1e-12, None))(M @ svd.components_.T)
    for C in (1.0, 3.0):
        m = lr(C).fit(np.hstack([E["tr"], Z(X["tr"])]), y["tr"])
        res.append(report(f"concat lsa{k} C={C}", m.decision_function(np.hstack([E["va"], Z(X["va"])])), m.decision_function(np.hstack([E["te"], Z(X["te"])]))))
json.dump(res, open("benchmarks/vuln/hybrid_probe.json", "w"), indent=1)
