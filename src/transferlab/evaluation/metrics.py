"""Classification metrics as a plain, JSON-ready dict, plus a terminal rendering of it.

Every number comes from scikit-learn so results match what users would compute themselves.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
from sklearn.metrics import (accuracy_score, average_precision_score, confusion_matrix, log_loss,
                             matthews_corrcoef, multilabel_confusion_matrix, precision_recall_curve,
                             precision_recall_fscore_support, roc_auc_score, roc_curve)

from ..errors import DataError


FPR_POINTS = (0.01, 0.05)
RECALL_POINTS = (0.8, 0.9)


def classification_report(y_true, proba, labels: list[str], *, multilabel: bool = False,
                          threshold: float = 0.5, predictions: list | None = None,
                          positive: str | None = None) -> dict:
    """Metrics for ``proba`` (n, k; columns in the order of ``labels``) against ``y_true``.

    Single-label: ``y_true`` holds one label per row, prediction is the argmax.
    Multi-label: ``y_true`` holds a list of labels per row, prediction is ``proba >= threshold``.
    ``predictions`` (labels, or label lists) replace those rules when a model decides with its own thresholds.
    ``positive`` names the class whose imbalance metrics head the report (default: the second of two labels).
    Undefined values (e.g. the AUC of a class absent from ``y_true``) are None.
    """
    labels = list(labels)
    k = len(labels)
    proba = np.asarray(proba, dtype=np.float64)
    if not len(y_true) and proba.size == 0:
        proba = proba.reshape(0, k)
    if proba.ndim != 2 or proba.shape != (len(y_true), k):
        raise ValueError(f"proba has shape {proba.shape}, expected ({len(y_true)}, {k})")
    # Rows as label lists for both modes; a bare string in multi-label data is one label, not characters.
    rows = [[r] if not multilabel or isinstance(r, str) else list(r) for r in y_true]
    _check_known(rows, labels)
    index = {lab: j for j, lab in enumerate(labels)}
    cols = list(range(k))

    report: dict = {"n": len(y_true), "labels": labels, "multilabel": multilabel}
    if multilabel:
        report["threshold"] = threshold
    if not len(y_true):
        # An empty evaluation set (e.g. every validation label unseen) is reported, not fatal.
        return _clean({**report, **dict.fromkeys(
            ("accuracy", "macro_f1", "micro_f1", "weighted_f1", "roc_auc", "pr_auc", "log_loss"))})

    if multilabel:
        y = np.zeros((len(y_true), k), dtype=int)
        for i, row in enumerate(rows):
            y[i, [index[lab] for lab in row]] = 1
        if predictions is None:
            pred = (proba >= threshold).astype(int)
        else:
            pred = np.zeros_like(y)
            for i, row in enumerate(predictions):
                pred[i, [index[lab] for lab in row]] = 1
        columns = [(y[:, j], proba[:, j]) for j in cols]
    else:
        y = np.asarray([index[lab] for lab in y_true])
        pred = proba.argmax(axis=1) if predictions is None else np.asarray([index[lab] for lab in predictions])
        columns = [(y == j, proba[:, j]) for j in cols]

    p, r, f, s = precision_recall_fscore_support(y, pred, labels=cols, average=None, zero_division=0)
    report["accuracy"] = accuracy_score(y, pred)
    for avg in ("macro", "micro", "weighted"):
        report[f"{avg}_f1"] = precision_recall_fscore_support(y, pred, labels=cols, average=avg,
                                                             zero_division=0)[2]
    report["per_class"] = {lab: {"precision": p[j], "recall": r[j], "f1": f[j], "support": s[j]}
                           for j, lab in enumerate(labels)}

    if not multilabel and k == 2:
        report["roc_auc"], report["pr_auc"] = _auc_pair(*columns[1])
    else:
        pairs = [_auc_pair(t, sc) for t, sc in columns]
        report["roc_auc"] = _mean_defined(a for a, _ in pairs)
        report["pr_auc"] = _mean_defined(b for _, b in pairs)
        report["roc_auc_per_class"] = {lab: pairs[j][0] for j, lab in enumerate(labels)}
        report["pr_auc_per_class"] = {lab: pairs[j][1] for j, lab in enumerate(labels)}

    if multilabel:
        mats = multilabel_confusion_matrix(y, pred, labels=cols)
        report["confusion_matrix"] = {lab: {"labels": [f"not {lab}", lab], "matrix": mats[j].tolist()}
                                      for j, lab in enumerate(labels)}
        report["log_loss"] = None
    else:
        report["confusion_matrix"] = {"labels": labels,
                                      "matrix": confusion_matrix(y, pred, labels=cols).tolist()}
        # float32 softmax rows miss 1 by ~1e-7; renormalise so scikit-learn does not warn.
        report["log_loss"] = log_loss(y, proba / proba.sum(axis=1, keepdims=True), labels=cols)

    # Skewed classes: what accuracy hides.  One-vs-rest per class, at the predictions actually made.
    if multilabel:
        hits = [(y[:, j].astype(bool), pred[:, j].astype(bool)) for j in cols]
        report["mcc"] = _mean_defined(_mcc(t, p) for t, p in hits)
    else:
        hits = [(y == j, pred == j) for j in cols]
        report["mcc"] = matthews_corrcoef(y, pred) if len(set(y.tolist()) | set(pred.tolist())) > 1 else 0.0
    per_class = {lab: imbalance_metrics(t, p, columns[j][1]) for j, (lab, (t, p)) in enumerate(zip(labels, hits))}
    report["imbalance_per_class"] = per_class
    if positive is None and k == 2 and not multilabel:
        positive = labels[1]
    if positive is not None:
        if positive not in index:
            raise DataError(f"positive class {positive!r} is not one of the labels {labels}")
        report["positive"] = positive
        report["imbalance"] = per_class[positive]

    # Calibration of the scores: top-label confidence (single-label), every label's score (multi-label).
    from .decision import reliability

    if multilabel:
        report["calibration"] = reliability(y.ravel(), proba.ravel())
    else:
        report["calibration"] = reliability(proba.argmax(axis=1) == y, proba.max(axis=1))
    return _clean(report)


def imbalance_metrics(truth, predicted, score) -> dict:
    """pd, pf and g-measure (FARSEC, Peters et al. 2018), MCC, PR-AUC, recall at fixed false-positive rates and
    precision at fixed recall, for one class against the rest."""
    truth, predicted = np.asarray(truth, dtype=bool), np.asarray(predicted, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    tp, fp = int((truth & predicted).sum()), int((~truth & predicted).sum())
    pd_ = tp / n_pos if n_pos else None
    pf = fp / n_neg if n_neg else None
    g = (2 * pd_ * (1 - pf) / (pd_ + 1 - pf) if pd_ is not None and pf is not None and pd_ + 1 - pf > 0
         else None)
    prec = tp / (tp + fp) if tp + fp else 0.0
    out = {"support": n_pos, "prevalence": n_pos / len(truth) if len(truth) else None, "pd": pd_, "pf": pf,
           "g_measure": g, "precision": prec, "f1": 2 * prec * pd_ / (prec + pd_) if pd_ and prec + pd_ else 0.0,
           "mcc": _mcc(truth, predicted), "pr_auc": average_precision_score(truth, score) if n_pos else None,
           "recall_at_fpr": {}, "precision_at_recall": {}}
    if n_pos and n_neg:
        fpr, tpr, _ = roc_curve(truth, score)
        for f in FPR_POINTS:
            out["recall_at_fpr"][f"{f:g}"] = float(tpr[fpr <= f + 1e-12].max())
        precision, recall, _ = precision_recall_curve(truth, score)
        for r in RECALL_POINTS:
            out["precision_at_recall"][f"{r:g}"] = float(precision[recall >= r - 1e-12].max())
    return out


def _mcc(truth, predicted) -> float:
    truth, predicted = np.asarray(truth, dtype=bool), np.asarray(predicted, dtype=bool)
    if truth.all() and predicted.all() or (~truth).all() and (~predicted).all():
        return 0.0 if len(truth) == 0 else 1.0
    return float(matthews_corrcoef(truth, predicted))


def format_report(report: dict) -> str:
    """A compact text table of a :func:`classification_report` result, for the terminal."""
    lines = [f"n={report['n']}  accuracy={_fmt(report.get('accuracy'))}  "
             f"macro F1={_fmt(report.get('macro_f1'))}  micro F1={_fmt(report.get('micro_f1'))}  "
             f"weighted F1={_fmt(report.get('weighted_f1'))}",
             f"ROC AUC={_fmt(report.get('roc_auc'))}  PR AUC={_fmt(report.get('pr_auc'))}"
             + (f"  log loss={_fmt(report['log_loss'])}" if report.get("log_loss") is not None else "")
             + (f"  MCC={_fmt(report['mcc'])}" if report.get("mcc") is not None else "")
             + (f"  ECE={_fmt(report['calibration']['ece'])}" if (report.get("calibration") or {}).get("ece")
                is not None else "")]
    imb = report.get("imbalance")
    if imb:
        at = "  ".join(f"recall@{float(f):.0%}FPR={_fmt(v)}" for f, v in imb["recall_at_fpr"].items())
        lines.append(f"positive class {report['positive']!r}: pd={_fmt(imb['pd'])}  pf={_fmt(imb['pf'])}  "
                     f"g={_fmt(imb['g_measure'])}  F1={_fmt(imb['f1'])}  PR AUC={_fmt(imb['pr_auc'])}  {at}")
    if report.get("slices"):
        from .slices import format_slices

        lines += ["", "slices (95% intervals: Wilson for accuracy, bootstrap for macro F1):",
                  format_slices(report["slices"])]
    per_class = report.get("per_class")
    if not per_class:
        return "\n".join(lines)

    roc_pc, pr_pc = report.get("roc_auc_per_class"), report.get("pr_auc_per_class")
    w = max(5, *(len(str(lab)) for lab in per_class))
    head = f"{'label':<{w}}  {'prec':>6} {'recall':>6} {'f1':>6} {'support':>7}"
    if roc_pc:
        head += f" {'rocauc':>6} {'prauc':>6}"
    lines += ["", head, "-" * len(head)]
    for lab, m in per_class.items():
        row = f"{lab:<{w}}  {_fmt(m['precision'])} {_fmt(m['recall'])} {_fmt(m['f1'])} {m['support']:>7}"
        if roc_pc:
            row += f" {_fmt(roc_pc.get(lab))} {_fmt(pr_pc.get(lab))}"
        lines.append(row)

    cm = report.get("confusion_matrix")
    if cm and report.get("multilabel"):
        lines += ["", "confusion per label (tn fp / fn tp):"]
        lines += [f"  {lab:<{w}}  {m['matrix'][0][0]} {m['matrix'][0][1]} / {m['matrix'][1][0]} "
                  f"{m['matrix'][1][1]}" for lab, m in cm.items()]
    elif cm:
        names = [str(lab) for lab in cm["labels"]]
        cw = max(4, *(len(str(v)) for row in cm["matrix"] for v in row), *(len(n) for n in names))
        lines += ["", "confusion matrix (rows = true, columns = predicted):",
                  " " * (w + 2) + " ".join(f"{n[:cw]:>{cw}}" for n in names)]
        lines += [f"{n:<{w}}  " + " ".join(f"{v:>{cw}}" for v in row) for n, row in zip(names, cm["matrix"])]
    return "\n".join(lines)


# ---------------------------------------------------------------------- helpers
def _check_known(rows: list[list], labels: list) -> None:
    known = set(labels)
    bad_rows = [{lab for lab in row if lab not in known} for row in rows]
    counts = Counter(lab for bad in bad_rows for lab in bad)
    if counts:
        detail = ", ".join(f"{lab!r} ({c} row{'s' * (c != 1)})" for lab, c in sorted(counts.items(), key=str))
        raise DataError(f"{sum(map(bool, bad_rows))} row(s) carry label(s) the model does not know: {detail}",
                        hint=f"the model was trained on labels {labels}; relabel or retrain")


def _auc_pair(truth, score) -> tuple[float | None, float | None]:
    """ROC AUC needs both classes present; average precision only needs a positive."""
    truth = np.asarray(truth, dtype=bool)
    pos = int(truth.sum())
    roc = roc_auc_score(truth, score) if 0 < pos < len(truth) else None
    pr = average_precision_score(truth, score) if pos else None
    return roc, pr


def _mean_defined(values) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def _clean(obj):
    """Numpy scalars to Python, NaN/inf to None, so ``json.dumps`` always works."""
    if isinstance(obj, dict):
        return {str(key): _clean(v) for key, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def _fmt(v) -> str:
    return f"{v:6.3f}" if isinstance(v, (int, float)) else f"{'-':>6}"
