"""``transferlab bench dapt``: does domain-adaptive pretraining (continued masked-LM training) help on IMDB?

Seed protocol.  The adapted encoder is MiniLM after ``mlm_epochs`` of whole-word masked-LM training on the seed
protocol's train and validation reviews (all 10,000; never a test review), built once and kept in
``OUT/models/minilm-imdb``.  Then, for each seed, MiniLM and the adapted MiniLM are each used fine-tuned and frozen
(+ logistic-regression head) on a setting two CPU cores finish in well under an hour per seed: ``max_train``
training reviews, ``max_validation`` to pick the epoch, ``max_length`` tokens, ``epochs`` of fine-tuning, scored on
``max_test`` test reviews (a fixed stratified draw, the same for every row).

Reported: test accuracy per row and seed, mean and standard deviation per (encoder, strategy), and the per-seed
difference adapted - base with its mean and standard deviation (the difference is small: seeds are how to tell it
from noise).  Results in ``results.json``, ``results.md`` and ``dapt.png``.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Callable

from .measure import PeakMemory, Stopwatch, need_seeds
from .report import hardware_line

DATA = dict(path="../shared/data/imdb/movie_reviews.csv.bz2", text_col="review", label_col="sentiment", split="seed")
STRATEGIES = ("finetune", "frozen")


def run(out: str | Path, *, data: str | None = None, text_col: str | None = None, label_col: str | None = None,
        split: str | None = None, seeds: list[int] = (13, 14, 15), max_train: int = 2000,
        max_validation: int = 1000, max_test: int = 4000, max_length: int = 128, epochs: int = 1,
        mlm_epochs: int = 1, mlm_max_texts: int | None = None, base: str = "minilm", device: str = "auto",
        announce: Callable[[str], None] = print) -> dict:
    from ..adaptation.dapt import adapt_mlm
    from ..data.loading import DataSpec, load_parts, subsample
    from ..models.base import environment
    from ..models.classifier import TextClassifier

    need_seeds(seeds)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = DataSpec(path=data or DATA["path"], text_col=text_col or DATA["text_col"],
                    label_col=label_col or DATA["label_col"], split=split or DATA["split"])
    full, _ = load_parts(spec, seed=13)
    train, val, test = (subsample(full[part], n, seed=13) for part, n in
                        (("train", max_train), ("validation", max_validation), ("test", max_test)))

    adapted = out / "models" / f"{base}-imdb"
    if (adapted / "adaptation.json").is_file():
        announce(f"adapted encoder: reusing {adapted}")
    else:
        texts = full["train"].texts + full["validation"].texts  # never a test review
        if mlm_max_texts and len(texts) > mlm_max_texts:
            texts = texts[:mlm_max_texts]
        announce(f"adapting {base} on {len(texts)} train + validation reviews ({mlm_epochs} epoch(s), "
                 f"{max_length} tokens)")
        adapt_mlm(base, texts, adapted, epochs=mlm_epochs, max_length=max_length, seed=13, device=device,
                  sources=[{"source": str(spec.path), "parts": ["train", "validation"], "n_texts": len(texts)}])
    record = json.loads((adapted / "adaptation.json").read_text(encoding="utf-8"))
    announce(f"test: {len(test)} reviews; train {len(train)}, validation {len(val)}")

    n_parts = {"train": len(train), "validation": len(val), "test": len(test), "mlm_texts": record["data"]["n_texts"]}
    setting = {"max_length": max_length, "epochs": epochs, "mlm_epochs": mlm_epochs}
    earlier = _earlier_rows(out, spec.to_dict(), n_parts, setting, record)
    rows = []

    def save() -> dict:  # after every row: a stopped run keeps what it measured
        results = summarise(rows, base, {
            "data": spec.to_dict(), "n": n_parts, "setting": setting,
            "adaptation": {k: record.get(k) for k in ("validation", "seconds", "settings")},
            "seeds": list(seeds), **environment(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        write(results, out)
        return results

    for seed in seeds:
        for name, encoder in ((base, base), (f"{base}+dapt", str(adapted))):
            for strategy in STRATEGIES:
                kept = earlier.get((seed, name, strategy))
                if kept is not None:  # measured by an earlier run with the same data, setting and adapted encoder
                    rows.append(kept)
                    announce(f"seed {seed}, {name}, {strategy}: test accuracy {kept['test_accuracy']:.4f} (kept "
                             "from an earlier run)")
                    continue
                params = dict(encoder=encoder, strategy=strategy, max_length=max_length, seed=seed, device=device)
                if strategy == "finetune":
                    params.update(epochs=epochs, lr=4e-5, batch_size=16)
                clf = TextClassifier(**params)
                with PeakMemory() as mem, Stopwatch() as fit:
                    clf.fit(train, validation=val, save_model=False)
                report = clf.evaluate(test)
                rows.append({"seed": seed, "encoder": name, "strategy": strategy,
                             "test_accuracy": round(float(report["accuracy"]), 4),
                             "macro_f1": round(float(report["macro_f1"]), 4),
                             "train_seconds": round(fit.seconds, 1), "peak_memory_mb": round(mem.peak_mb, 1)})
                announce(f"seed {seed}, {name}, {strategy}: test accuracy {rows[-1]['test_accuracy']:.4f} "
                         f"({fit.seconds:.0f}s)")
                save()
    return save()


def _earlier_rows(out: Path, data: dict, n: dict, setting: dict, record: dict) -> dict:
    """(seed, encoder, strategy) -> row of an earlier run in ``out`` on the same data, sizes, setting and adapted
    encoder (a stopped run resumes where it stopped; anything else is measured again)."""
    path = out / "results.json"
    if not path.is_file():
        return {}
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}
    same = (old.get("data") == data and old.get("n") == n and old.get("setting") == setting
            and (old.get("adaptation") or {}).get("seconds") == record.get("seconds"))
    return {(r["seed"], r["encoder"], r["strategy"]): r for r in old.get("rows", [])} if same else {}


def summarise(rows: list[dict], base: str, meta: dict) -> dict:
    cells = {}
    for r in rows:
        cells.setdefault((r["encoder"], r["strategy"]), []).append(r["test_accuracy"])
    table = {f"{enc}|{strat}": {"mean": round(statistics.mean(v), 4),
                                "sd": round(statistics.stdev(v), 4) if len(v) > 1 else 0.0, "n": len(v)}
             for (enc, strat), v in cells.items()}
    gains = {}
    for strategy in STRATEGIES:
        by_seed = {}
        for r in rows:
            if r["strategy"] == strategy:
                by_seed.setdefault(r["seed"], {})[r["encoder"]] = r["test_accuracy"]
        diffs = [100 * (v[f"{base}+dapt"] - v[base]) for v in by_seed.values() if {base, f"{base}+dapt"} <= set(v)]
        if diffs:
            gains[strategy] = {"per_seed": [round(d, 2) for d in diffs], "mean": round(statistics.mean(diffs), 2),
                               "sd": round(statistics.stdev(diffs), 2) if len(diffs) > 1 else 0.0}
    return {"benchmark": "dapt", **meta, "base": base, "rows": rows, "summary": table, "gain_points": gains}


def write(results: dict, out: Path) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    n, st, hw, base = results["n"], results["setting"], results["hardware"], results["base"]
    a = results["adaptation"]
    ppl = (a.get("validation") or {})
    before, after = (ppl.get("before") or {}).get("perplexity"), (ppl.get("after") or {}).get("perplexity")
    lines = [f"# Domain-adaptive pretraining on IMDB: {base} against {base} + masked-LM on the reviews", "",
             f"Data `{results['data']['path']}` (seed protocol). Masked-LM adaptation on {n['mlm_texts']} train + "
             f"validation reviews ({st['mlm_epochs']} epoch(s), whole-word masking, {st['max_length']} tokens"
             + (f"; held-out perplexity {before:.1f} -> {after:.1f}" if before and after else "") + "). "
             f"Classifiers: train {n['train']}, validation {n['validation']}, test {n['test']} reviews (fixed "
             f"draws), {st['max_length']} tokens, fine-tuning {st['epochs']} epoch(s). Seeds {results['seeds']}.",
             f"Hardware: {hardware_line(hw)}.", "",
             "| encoder | strategy | test accuracy (mean ± sd) | seeds |", "|---|---|---|---|"]
    for key, v in results["summary"].items():
        enc, strat = key.split("|")
        lines.append(f"| {enc} | {strat} | {100 * v['mean']:.2f}% ± {100 * v['sd']:.2f} | {v['n']} |")
    lines += ["", "| strategy | adapted - base (points, per seed) | mean ± sd |", "|---|---|---|"]
    for strat, g in results["gain_points"].items():
        lines.append(f"| {strat} | {g['per_seed']} | {g['mean']:+.2f} ± {g['sd']:.2f} |")
    lines += ["", "| seed | encoder | strategy | test accuracy | train s | peak MB |", "|---|---|---|---|---|---|"]
    for r in results["rows"]:
        lines.append(f"| {r['seed']} | {r['encoder']} | {r['strategy']} | {100 * r['test_accuracy']:.2f}% | "
                     f"{r['train_seconds']} | {r['peak_memory_mb']} |")
    lines += ["", "Command: `transferlab bench dapt --out benchmarks/dapt-imdb` (the adapted encoder is kept in "
                  "`OUT/models/`, not committed)."]
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _plot(results, out / "dapt.png")


def _plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(results["summary"])
    fig, ax = plt.subplots(figsize=(6, 3.6))
    means = [100 * results["summary"][k]["mean"] for k in keys]
    sds = [100 * results["summary"][k]["sd"] for k in keys]
    ax.bar(range(len(keys)), means, yerr=sds, capsize=4, color=["#8aa" if "+dapt" not in k else "#c84" for k in keys])
    ax.set_xticks(range(len(keys)), [k.replace("|", "\n") for k in keys], fontsize=8)
    ax.set_ylim(max(0.0, min(means) - 5), min(100.0, max(means) + 3))
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("IMDB: base encoder against the domain-adapted one\n(test accuracy, mean ± sd over seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
