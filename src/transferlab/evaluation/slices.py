"""Data slices: named subsets of an evaluation set, each reported beside the whole with its size and a 95%
confidence interval, so a model that is good on average but fails on short texts, one source or one pattern is
seen.

A slice is ``NAME=KIND:ARG``:

- ``regex:PATTERN``: texts where the (Python) regular expression matches, e.g. ``xss=regex:(?i)\\bxss\\b``;
- ``column:COL=VALUE``: rows whose column equals the value (``github=column:source=github``); ``column:COL~REGEX``
  where the regular expression matches the column's value (``advisories=column:origin~^(sap|cve)``);
- ``length:MIN-MAX``: texts of MIN to MAX words, either side open (``short=length:-100``, ``long=length:500-``).

Accuracy's interval is Wilson's score interval (exact enough at any size, never outside [0, 1]); macro F1's is a
percentile bootstrap (1,000 resamples of the slice, fixed seed): F1 has no closed form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, DataError

KINDS = ("regex", "column", "length")
BOOTSTRAP = 1000
MAX_BOOTSTRAP_ROWS = 20_000  # a bigger slice is resampled on a fixed random subset of this size (the CI barely moves)


@dataclass(frozen=True)
class Slice:
    name: str
    kind: str
    arg: str

    def _column(self) -> tuple[str, str, str]:
        """(column, operator, value): ``=`` equality or ``~`` regular expression, whichever comes first."""
        cut = min((i for i in (self.arg.find("="), self.arg.find("~")) if i >= 0), default=-1)
        return self.arg[:cut], self.arg[cut], self.arg[cut + 1:]

    def columns(self) -> list[str]:
        return [self._column()[0]] if self.kind == "column" else []

    def mask(self, texts: list[str], columns: dict[str, list]) -> np.ndarray:
        if self.kind == "regex":
            pattern = re.compile(self.arg)
            return np.array([pattern.search(t) is not None for t in texts], dtype=bool)
        if self.kind == "column":
            col, op, value = self._column()
            if col not in columns:
                raise DataError(f"slice {self.name!r} reads column {col!r}, which the data does not carry",
                                hint="name the column in the data (or read it with the data's other columns)")
            if op == "~":
                pattern = re.compile(value)
                return np.array([pattern.search(str(v)) is not None for v in columns[col]], dtype=bool)
            return np.array([str(v) == value for v in columns[col]], dtype=bool)
        lo, hi = _bounds(self.arg, self.name)
        n = np.array([len(t.split()) for t in texts])
        return (n >= lo) & (n <= hi)

    def __str__(self) -> str:
        return f"{self.name}={self.kind}:{self.arg}"


def _bounds(arg: str, name: str) -> tuple[float, float]:
    m = re.fullmatch(r"\s*(\d*)\s*-\s*(\d*)\s*", arg)
    if not m or not (m.group(1) or m.group(2)):
        raise ConfigError(f"slice {name!r}: length range {arg!r} is not MIN-MAX", hint="e.g. length:-100 or 100-500")
    lo = float(m.group(1)) if m.group(1) else 0.0
    hi = float(m.group(2)) if m.group(2) else float("inf")
    if lo > hi:
        raise ConfigError(f"slice {name!r}: length range {arg!r} is empty", hint="MIN must not exceed MAX")
    return lo, hi


def _check_regex(pattern: str, name: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"slice {name!r}: bad regular expression: {exc}") from None


def parse_slice(spec: str) -> Slice:
    name, sep, rest = str(spec).partition("=")
    kind, sep2, arg = rest.partition(":")
    name, kind = name.strip(), kind.strip().lower()
    if not sep or not sep2 or not name or kind not in KINDS or not arg:
        raise ConfigError(f"slice {spec!r} is not NAME=KIND:ARG",
                          hint="e.g. short=length:-100, xss=regex:(?i)xss, github=column:source=github")
    if kind == "regex":
        _check_regex(arg, name)
    elif kind == "column":
        col, op, value = Slice(name, kind, arg)._column() if ("=" in arg or "~" in arg) else ("", "", "")
        if not col or not op:
            raise ConfigError(f"slice {name!r}: column slices are COL=VALUE or COL~REGEX",
                              hint="e.g. column:source=github")
        if op == "~":
            _check_regex(value, name)
    elif kind == "length":
        _bounds(arg, name)
    return Slice(name, kind, arg)


def parse_slices(specs) -> list[Slice]:
    slices = [s if isinstance(s, Slice) else parse_slice(s) for s in (specs or [])]
    names = [s.name for s in slices]
    if len(set(names)) != len(names):
        raise ConfigError(f"slice names repeat: {names}", hint="give each slice its own name")
    return slices


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a proportion."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _codes(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """Each (gold, predicted) pair as one integer; a label outside the model's (-1, -2) becomes class k."""
    return np.where(y >= 0, y, k) * (k + 1) + np.where(pred >= 0, pred, k)


def _macro_f1_of(codes: np.ndarray, k: int) -> float:
    cm = np.bincount(codes, minlength=(k + 1) ** 2).reshape(k + 1, k + 1)
    tp = np.diag(cm)[:k]
    fp, fn = cm[:, :k].sum(0) - tp, cm[:k, :].sum(1) - tp
    seen = (tp + fp + fn) > 0
    return float(np.mean(2 * tp[seen] / (2 * tp[seen] + fp[seen] + fn[seen]))) if seen.any() else float("nan")


def slice_metrics(y: np.ndarray, pred: np.ndarray, k: int, *, seed: int = 0) -> dict:
    """Accuracy and macro F1 of one slice (label indices), each with a 95% interval."""
    n = len(y)
    if n == 0:
        return {"n": 0, "accuracy": None, "accuracy_ci": None, "macro_f1": None, "macro_f1_ci": None}
    correct = int(np.sum(y == pred))
    codes = _codes(y, pred, k)
    rng = np.random.default_rng(seed)
    sample = codes if n <= MAX_BOOTSTRAP_ROWS else codes[rng.choice(n, MAX_BOOTSTRAP_ROWS, replace=False)]
    boot = [_macro_f1_of(sample[rng.integers(0, len(sample), len(sample))], k) for _ in range(BOOTSTRAP)]
    lo, hi = np.nanpercentile(boot, [2.5, 97.5])
    return {"n": n, "accuracy": correct / n, "accuracy_ci": [float(v) for v in wilson(correct, n)],
            "macro_f1": _macro_f1_of(codes, k), "macro_f1_ci": [float(lo), float(hi)]}


def positive_metrics(y: np.ndarray, pred: np.ndarray, j: int) -> dict:
    """Recall and precision of class ``j`` with Wilson intervals (what a rare class is judged by)."""
    pos, called = y == j, pred == j
    tp = int(np.sum(pos & called))
    out = {"positives": int(pos.sum()), "called": int(called.sum())}
    for key, den in (("recall", int(pos.sum())), ("precision", int(called.sum()))):
        out[key] = tp / den if den else None
        out[f"{key}_ci"] = [float(v) for v in wilson(tp, den)] if den else None
    return out


def slice_report(texts: list[str], columns: dict[str, list], y_true: list, predictions: list, labels: list[str],
                 slices: list[Slice], *, seed: int = 0, positive: str | None = None) -> list[dict]:
    """One row per slice plus the whole set first: name, definition, n, share, accuracy and macro F1 with their
    intervals, and with ``positive`` that class's recall and precision with theirs.  Single-label only."""
    index = {lab: i for i, lab in enumerate(labels)}
    y = np.array([index.get(v, -1) for v in y_true])
    pred = np.array([index.get(v, -2) for v in predictions])
    total = len(y)
    masks = [("all", "the whole set", np.ones(total, dtype=bool))]
    masks += [(s.name, f"{s.kind}:{s.arg}", s.mask(texts, columns)) for s in slices]
    rows = []
    for name, definition, m in masks:
        row = {"name": name, "definition": definition, "share": float(m.mean()) if total else 0.0,
               **slice_metrics(y[m], pred[m], len(labels), seed=seed)}
        if positive is not None:
            row.update(positive_metrics(y[m], pred[m], index[positive]))
        rows.append(row)
    return rows


def with_ci(value, ci, digits: int = 2) -> str:
    """A proportion and its interval in percent: ``87.50 [79.1, 92.9]`` (``–`` when there is none)."""
    if value is None:
        return "–"
    return f"{100 * value:.{digits}f}" + ("" if not ci else f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]")


def format_slices(rows: list[dict]) -> str:
    """A plain-text table (the terminal report)."""
    lines = [f"{'slice':<16} {'n':>7} {'share':>6}  {'accuracy [95% CI]':<24} macro F1 [95% CI]"]
    for r in rows:
        lines.append(f"{r['name'][:16]:<16} {r['n']:>7} {100 * r['share']:>5.1f}%  "
                     f"{with_ci(r['accuracy'], r['accuracy_ci']):<24} {with_ci(r['macro_f1'], r['macro_f1_ci'])}")
    return "\n".join(lines)
