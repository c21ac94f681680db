"""From scores to decisions: calibration (temperature scaling, isotonic regression) and decision thresholds,
both fitted on validation data after training, saved in the model's ``config.json`` and used by ``predict``.

Threshold rules (``--threshold``):

- ``f1``: the threshold that maximises F1 of the positive class on validation data;
- ``g``: the threshold that maximises the g-measure, 2·pd·(1−pf)/(pd+1−pf) (balances recall against the
  false-positive rate, as FARSEC reports; on skewed data it flags far more than ``f1`` does);
- ``recall:R``: the highest threshold whose validation recall is at least R (the best precision at that recall);
- ``precision:P``: the lowest threshold whose validation precision is at least P (the best recall at it);
- ``fpr:F``: the lowest threshold whose validation false-positive rate is at most F;
- a number: that probability, as given.

Single-label models threshold the score of one *positive* class (``--positive``; for two classes the rarer
training class by default): a text is that class when its score reaches the threshold, else the most probable
other class.  Multi-label models get one threshold per label.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, DataError

CALIBRATIONS = (None, "temperature", "isotonic")
RULES = ("f1", "g", "recall", "precision", "fpr")


@dataclass(frozen=True)
class Rule:
    kind: str  # f1 | recall | precision | fpr | fixed
    value: float | None = None

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}:{self.value:g}"


def parse_threshold(rule) -> Rule | None:
    """``None``/``argmax`` → None; ``0.3`` → fixed; ``f1``; ``recall:0.9``; ``precision:0.8``; ``fpr:0.01``."""
    if rule is None:
        return None
    if isinstance(rule, (int, float)) and not isinstance(rule, bool):
        value = float(rule)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"threshold {value} is outside [0, 1]", hint="a probability, or a rule such as f1")
        return Rule("fixed", value)
    text = str(rule).strip().lower()
    if text in ("", "none", "argmax", "default"):
        return None
    if text in ("f1", "g"):
        return Rule(text)
    kind, sep, arg = text.partition(":")
    try:
        value = float(arg if sep else kind)
    except ValueError:
        raise ConfigError(f"threshold rule {rule!r} is not understood",
                          hint="f1, recall:0.9, precision:0.8, fpr:0.01, or a probability such as 0.3") from None
    if not sep:
        return parse_threshold(value)
    if kind not in RULES[2:]:
        raise ConfigError(f"threshold rule {kind!r} is unknown", hint="f1, g, recall:R, precision:P, fpr:F")
    if not (0.0 < value <= 1.0 if kind != "fpr" else 0.0 <= value < 1.0):
        raise ConfigError(f"threshold target {kind}:{value:g} is out of range", hint="recall and precision in (0, 1], fpr in [0, 1)")
    return Rule(kind, value)


# ---------------------------------------------------------------------------------------------- thresholds
def _operating_points(truth: np.ndarray, score: np.ndarray):
    """Every distinct threshold (descending) with the counts of predicting ``score >= threshold``."""
    order = np.argsort(-score, kind="stable")
    s, t = score[order], truth[order].astype(np.int64)
    tp, fp = np.cumsum(t), np.cumsum(1 - t)
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last index of each distinct score
    return s[last], tp[last], fp[last]


def choose_threshold(truth, score, rule: Rule, *, name: str = "positive") -> dict:
    """The threshold for ``rule`` on validation data, with what it achieves there and whether the target was met."""
    truth = np.asarray(truth, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    if rule.kind == "fixed":
        return _describe(truth, score, rule.value, rule, met=True)
    if n_pos == 0:
        raise DataError(f"the validation data has no example of {name!r}, so no threshold can be chosen for "
                        f"rule {rule}", hint="use a larger or stratified validation part, or a fixed threshold")
    thr, tp, fp = _operating_points(truth, score)
    recall = tp / n_pos
    precision = tp / np.maximum(tp + fp, 1)
    fpr = fp / max(n_neg, 1)
    met, note = True, None
    if rule.kind == "f1":
        f1 = np.where(tp > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
        i = int(np.argmax(f1))
    elif rule.kind == "g":
        keep = 1 - fpr
        g = np.where(recall + keep > 0, 2 * recall * keep / np.maximum(recall + keep, 1e-12), 0.0)
        i = int(np.argmax(g))
    elif rule.kind == "recall":
        i = int(np.flatnonzero(recall >= rule.value - 1e-12)[0])  # recall reaches 1 at the lowest score
        if fpr[i] >= 0.5:
            note = (f"reaching recall {rule.value:g} for {name!r} flags {fpr[i]:.0%} of the negatives on validation "
                    "data; the model barely separates the classes at that recall")
    elif rule.kind == "precision":
        ok = np.flatnonzero(precision >= rule.value - 1e-12)
        met = bool(len(ok))
        i = int(ok[-1]) if met else int(np.argmax(precision))
        if not met:
            note = (f"no threshold reaches precision {rule.value:g} for {name!r} on validation data (best "
                    f"{precision[i]:.3f}); using the threshold of the best precision instead")
    else:  # fpr
        ok = np.flatnonzero(fpr <= rule.value + 1e-12)
        met = bool(len(ok))
        if met:
            i = int(ok[-1])
            if tp[i] == 0:
                note = (f"at a false-positive rate of {rule.value:g} no validation example of {name!r} is found "
                        "(recall 0)")
        else:  # even the top score has too many negatives tied with it: only "never" keeps the rate
            return _describe(truth, score, math.nextafter(float(thr[0]), math.inf), rule, met=True,
                             note=f"every threshold that flags anything exceeds false-positive rate {rule.value:g} "
                                  f"for {name!r} on validation data; it will never be predicted")
    return _describe(truth, score, float(thr[i]), rule, met=met, note=note)


def _describe(truth, score, threshold: float, rule: Rule, *, met: bool, note: str | None = None) -> dict:
    pred = score >= threshold
    tp = int((pred & truth).sum())
    fp = int((pred & ~truth).sum())
    fn = int((~pred & truth).sum())
    n_pos, n_neg = tp + fn, int((~truth).sum())
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / n_pos if n_pos else 0.0
    if note:
        warnings.warn(note, stacklevel=3)
    return {"threshold": float(threshold), "rule": str(rule), "target_met": met, "note": note,
            "validation": {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
                           "fpr": fp / n_neg if n_neg else 0.0, "positives": n_pos, "n": int(len(truth))}}


# "Few" positives for choosing a model or a threshold on one validation part: under 20, one positive more or less
# moves recall (and the g-measure) by 5 points or more, so the choice follows the draw of the part; K-fold
# cross-validation then judges on every training positive instead (model choice, out-of-fold thresholds).
FEW_POSITIVES = 20


def default_positive(labels: list[str], train_targets: np.ndarray) -> str:
    """For two classes: the rarer one in training (ties: the second label)."""
    counts = np.bincount(np.asarray(train_targets), minlength=len(labels))
    return labels[0] if counts[0] < counts[1] else labels[1]


def apply_decision(proba: np.ndarray, labels: list[str], decision: dict | None, *, multilabel: bool) -> list:
    """Label(s) per row: argmax (or 0.5 per label) without a decision, else the stored thresholds."""
    thr = (decision or {}).get("threshold")
    if multilabel:
        cut = np.full(len(labels), 0.5) if not thr else np.asarray([thr["per_label"][lab]["threshold"]
                                                                    for lab in labels])
        return [[labels[j] for j in np.flatnonzero(row >= cut)] for row in proba]
    if not thr:
        return [labels[j] for j in proba.argmax(axis=1)]
    pos = labels.index(thr["positive"])
    others = proba.copy()
    others[:, pos] = -np.inf
    fallback = others.argmax(axis=1)
    pick = np.where(proba[:, pos] >= thr["threshold"], pos, fallback)
    return [labels[j] for j in pick]


# ---------------------------------------------------------------------------------------------- calibration
def fit_temperature(logits: np.ndarray, targets: np.ndarray, *, multilabel: bool) -> float:
    """Guo et al. 2017: one temperature T > 0 minimising validation NLL of ``logits / T``."""
    import torch

    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(targets))
    if not multilabel:
        keep = y >= 0
        z, y = z[keep], y[keep]
    if not len(y):
        raise DataError("no usable validation example to calibrate on", hint="calibration needs validation data")
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def nll():
        opt.zero_grad()
        scaled = z / log_t.exp()
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(scaled, y.double()) if multilabel
                else torch.nn.functional.cross_entropy(scaled, y))
        loss.backward()
        return loss

    opt.step(nll)
    t = float(log_t.detach().exp())
    return min(max(t, 1e-2), 1e2)


def fit_isotonic(proba: np.ndarray, targets: np.ndarray, labels: list[str], *, multilabel: bool) -> dict:
    """One isotonic map per class (one-vs-rest), stored as its breakpoints so it round-trips through JSON."""
    from sklearn.isotonic import IsotonicRegression

    proba = np.asarray(proba, dtype=np.float64)
    maps = {}
    for j, lab in enumerate(labels):
        truth = targets[:, j] if multilabel else (np.asarray(targets) == j)
        if truth.min() == truth.max():
            continue  # one outcome only: leave this column as it is
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(proba[:, j], truth.astype(float))
        maps[lab] = {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}
    return maps


def calibrate(logits: np.ndarray, calibration: dict | None, labels: list[str], *, multilabel: bool) -> np.ndarray:
    """Probabilities from logits, with the stored calibration applied."""
    z = np.asarray(logits, dtype=np.float64)
    kind = (calibration or {}).get("method")
    if kind == "temperature":
        z = z / calibration["temperature"]
    from scipy.special import expit, softmax

    proba = expit(z) if multilabel else softmax(z, axis=1)
    if kind == "isotonic":
        out = proba.copy()
        for j, lab in enumerate(labels):
            m = calibration["maps"].get(lab)
            if m:
                out[:, j] = np.interp(proba[:, j], m["x"], m["y"])
        if not multilabel:
            sums = out.sum(axis=1, keepdims=True)
            out = np.where(sums > 0, out / np.where(sums > 0, sums, 1), proba)
        proba = out
    return proba.astype(np.float32)


# ---------------------------------------------------------------------------------------------- reliability
def reliability(truth_correct: np.ndarray, confidence: np.ndarray, bins: int = 15) -> dict:
    """Expected calibration error (equal-width bins, Naeini et al. 2015) with the per-bin table behind it."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(truth_correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        sel = which == b
        n = int(sel.sum())
        if n:
            acc, mean_conf = float(ok[sel].mean()), float(conf[sel].mean())
            ece += n / len(conf) * abs(acc - mean_conf)
            table.append({"low": float(edges[b]), "high": float(edges[b + 1]), "n": n,
                          "accuracy": acc, "confidence": mean_conf})
    return {"ece": ece if len(conf) else None, "bins": table, "n_bins": bins}
