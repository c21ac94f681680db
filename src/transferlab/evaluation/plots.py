"""Training curves and confusion matrices as PNG files (headless: the Agg backend never needs a display)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 120


def plot_curves(history: list[dict], path) -> Path:
    """Loss (left) and validation metrics (right) per epoch, from metrics.jsonl records."""
    path = Path(path)
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4.2))
    try:
        for key in ("train_loss", "val_loss"):
            _series(ax_loss, history, key)
        metrics = list(dict.fromkeys(k for rec in history for k in rec if k.startswith("val_")
                                     and k != "val_loss" and isinstance(rec[k], (int, float))))
        for key in metrics:
            _series(ax_val, history, key)

        best = next((rec for rec in reversed(history) if rec.get("best")), None)
        if best is not None and metrics and isinstance(best.get(metrics[0]), (int, float)):
            ax_val.plot([best["epoch"]], [best[metrics[0]]], marker="*", markersize=16, color="gold",
                        markeredgecolor="black", linestyle="none", label=f"best (epoch {best['epoch']})")

        epochs = sorted({rec["epoch"] for rec in history if isinstance(rec.get("epoch"), (int, float))})
        for ax, title, ylabel in ((ax_loss, "Loss", "loss"), (ax_val, "Validation metrics", "value")):
            ax.set_title(title)
            ax.set_xlabel("epoch")
            ax.set_ylabel(ylabel)
            ax.grid(True, alpha=0.3)
            if 0 < len(epochs) <= 15:  # the default locator puts fractional ticks around a lone epoch
                ax.set_xticks(epochs)
            else:
                ax.xaxis.get_major_locator().set_params(integer=True)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize="small")
            else:
                ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes, color="gray")
        fig.tight_layout()
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_confusion(matrix, labels, path, title: str = "Confusion matrix") -> Path:
    """Heat map coloured by row-normalised rate (recall per true class), with raw counts in each cell."""
    path = Path(path)
    counts = np.asarray(matrix, dtype=float)
    labels = [str(lab) for lab in labels]
    totals = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)

    k = len(labels)
    side = min(max(4.5, 0.5 * k + 2.5), 14)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    try:
        im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="row share")
        ax.set_xticks(range(k), labels, rotation=45 if k > 3 else 0, ha="right" if k > 3 else "center")
        ax.set_yticks(range(k), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
        size = 10 if k <= 10 else 7
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{counts[i, j]:g}", ha="center", va="center", fontsize=size,
                        color="white" if rates[i, j] > 0.5 else "black")
        fig.tight_layout()
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_reliability(calibration: dict, path, title: str = "Reliability diagram") -> Path:
    """Accuracy against confidence per bin (the diagonal is perfect calibration), with each bin's share below."""
    path = Path(path)
    bins = calibration.get("bins") or []
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5.5, 6.5), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    try:
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
        if bins:
            mids = [(b["low"] + b["high"]) / 2 for b in bins]
            width = bins[0]["high"] - bins[0]["low"]
            ax.bar(mids, [b["accuracy"] for b in bins], width=width * 0.9, alpha=0.7, edgecolor="black",
                   label="observed frequency")
            ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="C3", markersize=4,
                    label="mean confidence")
            total = sum(b["n"] for b in bins)
            hist.bar(mids, [b["n"] / total for b in bins], width=width * 0.9, color="C0", alpha=0.5)
        ece = calibration.get("ece")
        ax.set_title(title + (f" (ECE {ece:.3f})" if isinstance(ece, float) else ""))
        ax.set_ylabel("fraction correct")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(loc="upper left", fontsize=8)
        hist.set_xlabel("confidence")
        hist.set_ylabel("share")
        fig.tight_layout()
        return _save(fig, path)
    finally:
        plt.close(fig)


def _series(ax, history: list[dict], key: str) -> None:
    points = [(rec["epoch"], rec[key]) for rec in history
              if isinstance(rec.get(key), (int, float)) and "epoch" in rec]
    if points:
        x, y = zip(*points)
        ax.plot(x, y, marker="o", markersize=4, label=key)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path
