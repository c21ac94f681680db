"""Ranking metrics for linking queries (CVE descriptions) to candidates (commit messages): recall@k and MRR.

Every query is scored against the whole candidate pool; a query counts as found at rank r when its best-placed
gold candidate is r-th.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .plots import _save, plt

CURVE_MAX_K = 50


def ranks(scores: np.ndarray, gold: Sequence[set[int]]) -> np.ndarray:
    """1-based rank of the best-ranked gold candidate per query.

    Ties are broken pessimistically: the gold item is placed after every non-gold candidate with the same score,
    so a scorer that gives everything the same value ranks last rather than first.  Gold items tied with each
    other do not push one another down, since the first of them found is what counts.
    """
    scores = _check(scores, gold)
    out = np.empty(len(gold), dtype=np.int64)
    for q, items in enumerate(gold):
        row = scores[q]
        mask = np.zeros(row.shape[0], dtype=bool)
        mask[list(items)] = True
        best = row[mask].max()
        out[q] = 1 + int(np.count_nonzero(row[~mask] >= best))
    return out


def ranking_report(scores: np.ndarray, gold: Sequence[set[int]], ks: Sequence[int] = (1, 5, 10)) -> dict:
    """recall@k (share of queries with a gold item in the top k), MRR, median rank, and the ranks themselves."""
    r = ranks(scores, gold)
    report = {f"recall@{int(k)}": float(np.mean(r <= k)) if len(r) else 0.0 for k in ks}
    report["mrr"] = float(np.mean(1.0 / r)) if len(r) else 0.0
    report["median_rank"] = float(np.median(r)) if len(r) else float("nan")
    report["n_queries"] = int(len(r))
    report["n_candidates"] = int(np.asarray(scores).shape[1]) if np.ndim(scores) == 2 else 0
    report["ranks"] = r.tolist()
    return report


def recall_curve(rank_values, max_k: int = CURVE_MAX_K) -> np.ndarray:
    """recall@k for k = 1..max_k."""
    r = np.asarray(rank_values)
    return np.array([np.mean(r <= k) if len(r) else 0.0 for k in range(1, max_k + 1)])


def plot_recall_curve(reports: dict[str, dict], path, max_k: int = CURVE_MAX_K) -> Path:
    """recall@k against k (1..max_k), one line per method; each report needs its "ranks"."""
    path = Path(path)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    try:
        k = np.arange(1, max_k + 1)
        for name, report in reports.items():
            if "ranks" not in report:
                raise ValueError(f"report {name!r} has no 'ranks'; build it with ranking_report")
            mrr = report.get("mrr", float("nan"))
            ax.plot(k, recall_curve(report["ranks"], max_k), label=f"{name} (MRR {mrr:.3f})")
        ax.set_xlabel("k (candidates looked at)")
        ax.set_ylabel("recall@k")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(1, max_k)
        ax.grid(True, alpha=0.3)
        if reports:
            ax.legend(fontsize="small", loc="lower right")
        fig.tight_layout()
        return _save(fig, path)
    finally:
        plt.close(fig)


def _check(scores, gold: Sequence[set[int]]) -> np.ndarray:
    """Shape and gold mistakes are caller bugs, so they raise ValueError rather than DataError."""
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (n_queries, n_candidates), got shape {scores.shape}")
    if scores.shape[0] != len(gold):
        raise ValueError(f"{scores.shape[0]} rows of scores but {len(gold)} gold sets")
    if np.isnan(scores).any():
        q = int(np.argwhere(np.isnan(scores))[0][0])
        raise ValueError(f"query {q} has NaN scores")
    n = scores.shape[1]
    for q, items in enumerate(gold):
        if not items:
            raise ValueError(f"query {q} has no gold candidate")
        bad = [i for i in items if not 0 <= int(i) < n]
        if bad:
            raise ValueError(f"query {q}: gold index {bad[0]} out of range 0..{n - 1}")
    return scores
