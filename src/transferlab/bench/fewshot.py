"""Few-shot learning curves: our contrastive strategy and the SetFit library, same encoder, splits and hardware.

For each size k (labels per class) and seed, k examples per class are drawn from the training part (seeded, the
same draw for both methods); each method trains on them alone (no validation data: a few-shot user has none) and
is scored on the same test rows.  Both tune on the same pairs budget: every balanced pair of the labelled texts
(SetFit's default ``oversampling``; ours capped at the same count), and both fit an L2 logistic regression
(C = 1) on the tuned embeddings.  Ours can also run with ``head+tail`` truncation (the start and the end of a long
text in the same token budget), an option of TransferLab the library lacks; each variant of ours gets its own
verdict.  The "full" point trains our frozen-encoder head on the whole training part, the ceiling the curve climbs
towards.  Runs already in the output folder (same data, encoder, length and test rows) are kept, so a curve can be
measured in parts.
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.records import Examples
from ..errors import DataError
from .measure import earlier_results


def draw(train: Examples, k: int, seed: int) -> Examples:
    """k examples per class, seeded; a class with fewer than k examples is an error naming it."""
    rng = np.random.default_rng(seed)
    picks = []
    for lab in train.label_names():
        idx = [i for i, y in enumerate(train.labels) if y == lab]
        if len(idx) < k:
            raise DataError(f"class {lab!r} has {len(idx)} training examples, fewer than {k} per class",
                            where=train.source, hint="use smaller --sizes")
        picks += list(rng.choice(idx, size=k, replace=False))
    return train.subset(sorted(picks))


OURS = "ours (contrastive)"
PEER = "SetFit library"


def ours_name(truncation: str) -> str:
    return OURS if truncation == "head" else f"{OURS[:-1]}, {truncation})"


def _ours(small: Examples, test: Examples, encoder: str, max_length: int, seed: int, device: str,
          truncation: str = "head") -> dict:
    from ..models.classifier import TextClassifier

    n = len(small)
    clf = TextClassifier(encoder, strategy="contrastive", max_length=max_length, seed=seed, device=device,
                         truncation=truncation, patience=None, validation_fraction=0.0,
                         contrastive_pairs=n * (n - 1))
    started = time.perf_counter()
    clf.fit(small, save_model=False)
    seconds = time.perf_counter() - started
    return {"accuracy": clf.score(test), "train_seconds": round(seconds, 2)}


def _setfit(small: Examples, test: Examples, encoder: str, max_length: int, seed: int, device: str,
            row_dir: Path) -> dict:
    from .peers import run_setfit

    outcome = run_setfit({"encoder": encoder, "max_length": max_length}, {"seed": seed}, {}, small, None, test,
                         row_dir, device)
    pred = [outcome.labels[j] for j in outcome.proba.argmax(axis=1)]
    return {"accuracy": float(np.mean([p == y for p, y in zip(pred, test.labels)])),
            "train_seconds": round(outcome.train_seconds, 2)}


def _full(train: Examples, test: Examples, encoder: str, max_length: int, seed: int, device: str) -> dict:
    from ..models.classifier import TextClassifier

    clf = TextClassifier(encoder, strategy="frozen", max_length=max_length, seed=seed, device=device)
    started = time.perf_counter()
    clf.fit(train)
    return {"accuracy": clf.score(test), "train_seconds": round(time.perf_counter() - started, 2)}


def run(parts: dict[str, Examples], out: Path, *, encoder: str = "minilm", sizes=(8, 16, 32, 64), seeds: int = 3,
        max_length: int = 128, max_test: int | None = None, peer: bool = True, full: bool = True,
        truncations=("head",), device: str = "auto", target_size: int = 16, source: str = "",
        announce: Callable[[str], None] = print) -> dict:
    """Run the curve; runs already in ``out/results.json`` from the same data, encoder, length and test rows are
    kept (and not run again), so a curve can be measured in parts."""
    from ..data.splits import subsample
    from ..models.base import environment

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train, test = parts["train"], parts["test"]
    if train.multilabel or train.is_pair:
        raise DataError("the few-shot benchmark takes single-label, single-text data", where=train.source)
    bad = [t for t in truncations if t not in ("head", "head+tail")]
    if bad or not truncations:
        raise DataError(f"unknown truncation(s) {bad}", hint="head, head+tail or both (comma-separated)")
    if max_test and len(test) > max_test:
        test = subsample(test, max_test, seed=13)
    env = environment()
    results = {"benchmark": "few-shot", "data": source, "encoder": encoder, "max_length": max_length,
               "n_train_pool": len(train), "n_test": len(test), "seeds": seeds,
               "hardware": env["hardware"], "versions": env["versions"], "runs": []}
    earlier = earlier_results(out, results, ("data", "encoder", "max_length", "n_train_pool", "n_test"), "runs")
    if earlier:
        announce(f"keeping {len(earlier)} earlier run(s) from {out / 'results.json'} (same data, encoder and test rows)")
    done = {(r["method"], r["per_class"], r["seed"]) for r in earlier}
    results["runs"] = earlier
    results["sizes"] = sorted({r["per_class"] for r in earlier if r["per_class"] != "all"} | set(sizes))
    methods = {ours_name(t): partial(_ours, truncation=t) for t in truncations}
    if peer:
        methods[PEER] = partial(_setfit, row_dir=out / "setfit")
    for k in sizes:
        for s in range(seeds):
            small = draw(train, k, seed=1000 + s)
            for method, train_and_score in methods.items():
                if (method, k, s) in done:
                    continue
                r = train_and_score(small, test, encoder, max_length, s, device)
                results["runs"].append({"method": method, "per_class": k, "seed": s, **r})
                announce(f"  {k:>3} per class, seed {s}, {method}: accuracy {100 * r['accuracy']:.2f} "
                         f"({r['train_seconds']:.0f}s)")
                write(results, out)
    if full and not any(r["per_class"] == "all" for r in results["runs"]):
        r = _full(train, test, encoder, max_length, 0, device)
        results["runs"].append({"method": "ours (frozen, all labels)", "per_class": "all", "seed": 0, **r})
        announce(f"  all {len(train)} labels, frozen encoder + head: accuracy {100 * r['accuracy']:.2f}")
    results["target"] = verdict(results, target_size)
    write(results, out)
    return results


def summary(results: dict) -> list[dict]:
    groups: dict[tuple, list] = {}
    for r in results["runs"]:
        groups.setdefault((r["method"], r["per_class"]), []).append(r)
    rows = []
    for (method, k), runs in groups.items():
        acc = np.asarray([r["accuracy"] for r in runs])
        rows.append({"method": method, "per_class": k, "n_seeds": len(runs), "mean": float(acc.mean()),
                     "std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                     "train_seconds": float(np.mean([r["train_seconds"] for r in runs]))})
    return rows


def verdict(results: dict, k: int) -> list[dict]:
    """One verdict per variant of ours at size ``k``: its mean against the SetFit library's, on the same draws."""
    rows = {(r["method"], r["per_class"]): r for r in summary(results)}
    peer = rows.get((PEER, k))
    variants = sorted(m for m, size in rows if size == k and m.startswith(OURS[:-1]))
    if peer is None or not variants:
        return [{"per_class": k, "method": OURS, "status": "not judged",
                 "why": "ours and the SetFit library must both run at this size"}]
    return [{"per_class": k, "method": m, "status": "met" if rows[(m, k)]["mean"] >= peer["mean"] else "not met",
             "ours": rows[(m, k)]["mean"], "setfit": peer["mean"]} for m in variants]


def write(results: dict, out: Path) -> None:
    out = Path(out)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    rows = summary(results)
    lines = [f"# Few-shot learning curve: {results['encoder']} on {results['data']}", "",
             f"Test rows: {results['n_test']}; max length {results['max_length']} tokens; "
             f"{results['seeds']} seed(s) per size. Hardware: {results['hardware'].get('processor')}, "
             f"{results['hardware'].get('cpu_count')} CPUs" + (f", {results['hardware']['gpu']}"
                                                              if results['hardware'].get('gpu') else ", no GPU") + ".",
             "", "| labels per class | method | accuracy (mean ± sd) | seeds | train s (mean) |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['per_class']} | {r['method']} | {100 * r['mean']:.2f} ± {100 * r['std']:.2f} | "
                     f"{r['n_seeds']} | {r['train_seconds']:.0f} |")
    for t in results.get("target") or []:
        detail = (f"{100 * t['ours']:.2f} vs SetFit {100 * t['setfit']:.2f}" if "ours" in t else t["why"])
        lines += ["", f"Target, {t['per_class']} labels per class, {t['method']} ≥ SetFit: **{t['status']}** "
                      f"({detail})."]
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _plot(rows, out / "learning_curve.png")


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    try:
        for method in sorted({r["method"] for r in rows if r["per_class"] != "all"}):
            pts = sorted((r["per_class"], r["mean"], r["std"]) for r in rows
                         if r["method"] == method and r["per_class"] != "all")
            if pts:
                k, m, s = zip(*pts)
                ax.errorbar(k, 100 * np.asarray(m), yerr=100 * np.asarray(s), marker="o", capsize=3, label=method)
        for r in rows:
            if r["per_class"] == "all":
                ax.axhline(100 * r["mean"], linestyle="--", color="grey", label=f"{r['method']}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("labelled examples per class")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title("Few-shot learning curve (mean ± sd over seeds)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
