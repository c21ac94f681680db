"""Security bug report prediction on FARSEC-format data (Peters et al., IEEE TSE 2019).

Input: a CSV with ``project, split, id, security, text`` (``split`` = train for the older half, test for the newer
half: the paper's within-project protocol).  Every choice (loss, weights, sampler, threshold, C) is made on a
stratified validation part of the training half only; the test half is scored once per family, with the setting
that won on validation.  Reported for the security class: pd (recall), pf (false-positive rate), g-measure, PR-AUC,
F1, MCC and recall at 1% / 5% false-positive rate, beside the published numbers.

Families (``--families``):
- ``tfidf``: word 1-2-gram TF-IDF + logistic regression (the paper's learner family, without its filter);
- ``tfidf-title``: the same, plus a TF-IDF block of the report's title weighted apart (encoders/tfidf.with_title);
- ``glove-cnn``, ``glove-dan``: GloVe-50d word vectors with a CNN or a deep averaging network;
- ``minilm-frozen``: the MiniLM sentence encoder, frozen, + logistic regression;
- ``minilm-frozen-tfidf``: the hybrid: that embedding and 300 latent TF-IDF dimensions, + logistic regression;
- ``minilm-frozen-tfidf-stack``: the stacked hybrid: that embedding and a TF-IDF model's out-of-fold score;
- ``minilm-finetune``: MiniLM fine-tuned (hours on CPU: a GPU family).
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.records import Examples
from ..errors import DataError
from .measure import earlier_results
from .report import hardware_line

PUBLISHED = [
    {"name": "FARSEC (Peters et al. 2018), best: logistic regression after its filter", "pd": 55.0, "pf": 10.4,
     "g_measure": 68.1},
    {"name": "FARSEC, no filtering", "pd": 29.7, "pf": 6.0, "g_measure": 45.2},
    {"name": "Jiang et al. 2020 (LTRWES), best", "pd": 52.2, "pf": 31.8, "g_measure": 59.1},
]
TARGET_G = 75.0
POSITIVE = "1"

# Each family: fixed options and a grid searched on validation (every combination; threshold rule "g" always).
FAMILIES: dict[str, dict] = {
    "tfidf": {"kind": "tfidf", "grid": {"C": [0.1, 1.0, 10.0], "class_weight": [None, "balanced"]}},
    "tfidf-title": {"kind": "tfidf", "grid": {"C": [0.3, 1.0, 3.0], "class_weight": ["balanced"],
                                              "title_weight": [0.5, 1.0]}},
    "glove-cnn": {"kind": "transferlab", "model": {"encoder": "glove-50d", "head": "cnn", "max_length": 256},
                  "train": {"epochs": 6, "patience": 2, "metric": "pr_auc"},
                  "grid": {"class_weight": ["auto", None], "sampler": [None, "sqrt"]}},
    "glove-dan": {"kind": "transferlab", "model": {"encoder": "glove-50d", "head": "dan", "max_length": 256},
                  "train": {"epochs": 10, "patience": 3, "metric": "pr_auc"},
                  "grid": {"class_weight": ["auto", None], "loss": ["ce", "focal"]}},
    "minilm-frozen": {"kind": "transferlab", "model": {"encoder": "minilm", "strategy": "frozen",
                                                       "max_length": 256, "truncation": "head+tail"},
                      "train": {"metric": "pr_auc"},
                      "grid": {"class_weight": ["auto", None], "loss": ["ce", "focal"]}},
    "minilm-frozen-tfidf": {"kind": "transferlab", "model": {"encoder": "minilm", "strategy": "frozen",
                                                             "max_length": 256, "truncation": "head+tail",
                                                             "tfidf_dim": 300},
                            "train": {"metric": "pr_auc"},
                            "grid": {"class_weight": ["auto", None], "loss": ["ce", "focal"]}},
    "minilm-frozen-tfidf-stack": {"kind": "transferlab", "model": {"encoder": "minilm", "strategy": "frozen",
                                                                   "max_length": 256, "truncation": "head+tail",
                                                                   "tfidf_stack": True, "head_solver": "lbfgs"},
                                  "train": {"metric": "pr_auc"},
                                  "grid": {"class_weight": ["auto", None], "head_c": [0.3, 1.0]}},
    # a GPU family: on 2 CPU cores MiniLM trains at about 4.5 samples/s at 256 tokens, so 2 epochs x 2 settings over
    # Chromium's training part take about 4.7 hours (benchmarks/farsec/NOTES.md, "A fine-tuned MiniLM ...")
    "minilm-finetune": {"kind": "transferlab", "model": {"encoder": "minilm", "strategy": "finetune",
                                                         "max_length": 256, "truncation": "head+tail"},
                        "train": {"epochs": 2, "metric": "pr_auc"},
                        "grid": {"class_weight": ["auto"], "sampler": [None, "sqrt"]}},
}
DEFAULT_FAMILIES = ("tfidf", "tfidf-title", "glove-cnn", "glove-dan", "minilm-frozen")


@dataclass
class FarsecData:
    train: Examples
    validation: Examples
    test: Examples
    project: str


def load(path: str | Path, *, validation_fraction: float = 0.25, seed: int = 13, max_train: int | None = None,
         max_test: int | None = None) -> FarsecData:
    """Read a FARSEC-format file; the validation part is a stratified share of the training half."""
    from ..data.readers import read_examples
    from ..data.splits import split_examples, subsample

    ex, report = read_examples(path, text_col="text", label_col="security", keep_cols=["split", "project"])
    if report.skipped:
        raise DataError(report.summary(), where=str(path))
    labels = sorted(set(ex.labels))
    if not set(labels) <= {"0", "1"} or POSITIVE not in labels:
        raise DataError(f"column 'security' must hold 0/1 with some 1s; found {labels[:5]}", where=str(path))
    splits = ex.columns["split"]
    unknown = sorted(set(splits) - {"train", "test"})
    if unknown:
        raise DataError(f"column 'split' must be train or test; found {unknown[:5]}", where=str(path))
    train = ex.subset([i for i, s in enumerate(splits) if s == "train"])
    test = ex.subset([i for i, s in enumerate(splits) if s == "test"])
    if not len(train) or not len(test):
        raise DataError("the file needs both a train and a test half", where=str(path))
    parts = split_examples(train, f"stratified:{1 - validation_fraction},{validation_fraction},0", seed=seed)
    tr, val = parts["train"], parts["validation"]
    if max_train and len(tr) > max_train:
        tr = subsample(tr, max_train, seed=seed)
    if max_test and len(test) > max_test:
        test = subsample(test, max_test, seed=seed)
    projects = sorted(set(ex.columns["project"]))
    return FarsecData(tr, val, test, ",".join(projects))


def _grid(space: dict) -> list[dict]:
    keys = list(space)
    return [dict(zip(keys, values)) for values in itertools.product(*(space[k] for k in keys))]


def _positive_scores(proba: np.ndarray, labels: list[str]) -> np.ndarray:
    return proba[:, labels.index(POSITIVE)]


def _fitter(family: dict, settings: dict, seed: int, device: str):
    """fit(train, validation or None, run_dir) -> (positive-class score function, model or None), for any family.
    Without validation (cross-validation folds, the refit) a model trains its fixed epochs and no threshold."""
    def fit(train: Examples, validation: Examples | None, run_dir: Path | None = None):
        if family["kind"] == "tfidf":
            from sklearn.linear_model import LogisticRegression

            from ..encoders.tfidf import with_title
            from .peers import tfidf_vectorizer

            vec = with_title(tfidf_vectorizer(max_features=200_000), settings.get("title_weight", 0.0), len(train))
            X = vec.fit_transform(train.texts)
            y = np.asarray([lab == POSITIVE for lab in train.labels])
            clf = LogisticRegression(C=settings["C"], class_weight=settings["class_weight"], max_iter=2000,
                                     random_state=seed).fit(X, y)
            return (lambda texts: clf.predict_proba(vec.transform(texts))[:, 1]), None
        from ..models.classifier import TextClassifier

        held = {"threshold": "g", "positive": POSITIVE} if validation is not None else {
            "validation_fraction": 0.0, "patience": None}
        # later dicts override earlier ones: without validation, a family's own patience gives way to none
        clf = TextClassifier(**{**family["model"], **family.get("train", {}), **settings, **held, "seed": seed,
                                "device": device})
        clf.fit(train, validation=validation, out_dir=run_dir, save_model=False)
        return (lambda texts: _positive_scores(clf.predict_proba(texts, show_progress=len(texts) > 2000),
                                               clf.labels_)), clf
    return fit


def run_family_cv(name: str, data: FarsecData, *, folds: int, repeats: int, seed: int, device: str, out: Path,
                  announce: Callable[[str], None]) -> dict:
    """Model choice that holds up with few positives: every setting judged by repeated stratified K-fold
    cross-validation over the whole training half (training + validation parts), its threshold fitted on the
    pooled out-of-fold scores, each fold's g-measure at that threshold reported as mean ± sd; the chosen setting is
    refitted on the whole training half and scored once on the test half."""
    from sklearn.model_selection import RepeatedStratifiedKFold

    from ..evaluation.decision import Rule, choose_threshold
    from ..evaluation.metrics import imbalance_metrics

    family = FAMILIES[name]
    full = Examples.concat(data.train, data.validation)
    truth = np.asarray([lab == POSITIVE for lab in full.labels])
    if truth.sum() < folds:
        raise DataError(f"{int(truth.sum())} security reports in the training half: {folds}-fold cross-validation "
                        "needs at least one per fold", hint="use fewer --folds")
    splits = list(RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
                  .split(np.zeros(len(truth)), truth))
    search, best = [], None
    for settings in _grid(family["grid"]):
        started = time.perf_counter()
        oof = np.full((repeats, len(truth)), np.nan)
        for i, (tr, te) in enumerate(splits):
            score_fn, _ = _fitter(family, settings, seed, device)(full.subset(tr), None)
            oof[i // folds, te] = score_fn([full.texts[j] for j in te])
        chosen = choose_threshold(np.tile(truth, repeats), oof.ravel(), Rule("g"), name="security")
        per_fold = [imbalance_metrics(truth[te], oof[i // folds, te] >= chosen["threshold"], oof[i // folds, te])
                    for i, (_, te) in enumerate(splits)]
        summary = {k: float(np.mean([m[k] or 0.0 for m in per_fold])) for k in ("pd", "pf", "g_measure", "pr_auc",
                                                                               "f1")}
        spread = {k: float(np.std([m[k] or 0.0 for m in per_fold], ddof=1)) for k in ("g_measure", "pr_auc")}
        seconds = time.perf_counter() - started
        entry = {"settings": settings, "threshold": chosen["threshold"], "train_seconds": round(seconds, 2),
                 "validation": summary, "validation_sd": spread}
        search.append(entry)
        announce(f"    {name} {settings}: out-of-fold g {100 * summary['g_measure']:.1f} ± "
                 f"{100 * spread['g_measure']:.1f}, PR-AUC {summary['pr_auc']:.3f} ({seconds:.0f}s)")
        key = (summary["g_measure"], summary["pr_auc"])
        if best is None or key > best[0]:
            best = (key, entry)
    _, entry = best
    started = time.perf_counter()
    score_fn, model = _fitter(family, entry["settings"], seed, device)(full, None)
    refit = time.perf_counter() - started
    started = time.perf_counter()
    test_scores = score_fn(data.test.texts)
    infer = time.perf_counter() - started
    test_truth = np.asarray([lab == POSITIVE for lab in data.test.labels])
    test = imbalance_metrics(test_truth, test_scores >= entry["threshold"], test_scores)
    row_dir = out / "rows" / name
    row_dir.mkdir(parents=True, exist_ok=True)
    np.save(row_dir / "test_scores.npy", test_scores.astype(np.float32))
    return {"name": name, "kind": family["kind"], "status": "ok", "chosen": entry["settings"],
            "selection": {"method": "cv", "folds": folds, "repeats": repeats},
            "threshold": entry["threshold"], "validation": entry["validation"],
            "validation_sd": entry["validation_sd"], "test": test, "train_seconds": round(refit, 2),
            "inference_docs_per_second": round(len(data.test) / infer, 1) if infer else None,
            "search": search, "params": None if model is None else model.fit_info_.get("params_total")}


def run_family(name: str, data: FarsecData, *, seed: int, device: str, out: Path,
               announce: Callable[[str], None]) -> dict:
    from ..evaluation.decision import Rule, choose_threshold
    from ..evaluation.metrics import imbalance_metrics

    family = FAMILIES[name]
    val_truth = np.asarray([lab == POSITIVE for lab in data.validation.labels])
    test_truth = np.asarray([lab == POSITIVE for lab in data.test.labels])
    search, best = [], None
    for settings in _grid(family["grid"]):
        started = time.perf_counter()
        run_dir = out / "rows" / name / "_".join(f"{k}-{v}" for k, v in settings.items())
        score_fn, model = _fitter(family, settings, seed, device)(data.train, data.validation,
                                                                  None if family["kind"] == "tfidf" else run_dir)
        seconds = time.perf_counter() - started
        val_scores = score_fn(data.validation.texts)
        chosen = choose_threshold(val_truth, val_scores, Rule("g"), name="security")
        val = imbalance_metrics(val_truth, val_scores >= chosen["threshold"], val_scores)
        entry = {"settings": settings, "threshold": chosen["threshold"], "train_seconds": round(seconds, 2),
                 "validation": {k: val[k] for k in ("pd", "pf", "g_measure", "pr_auc", "f1")}}
        search.append(entry)
        announce(f"    {name} {settings}: validation g {100 * val['g_measure']:.1f}, PR-AUC {val['pr_auc']:.3f} "
                 f"({seconds:.0f}s)")
        key = (val["g_measure"], val["pr_auc"] or 0.0)
        if best is None or key > best[0]:
            best = (key, entry, score_fn, model)
    _, entry, score_fn, model = best
    started = time.perf_counter()
    test_scores = score_fn(data.test.texts)
    infer = time.perf_counter() - started
    test = imbalance_metrics(test_truth, test_scores >= entry["threshold"], test_scores)
    row_dir = out / "rows" / name
    row_dir.mkdir(parents=True, exist_ok=True)
    np.save(row_dir / "test_scores.npy", test_scores.astype(np.float32))
    return {"name": name, "kind": family["kind"], "status": "ok", "chosen": entry["settings"],
            "threshold": entry["threshold"], "validation": entry["validation"], "test": test,
            "train_seconds": entry["train_seconds"],
            "inference_docs_per_second": round(len(data.test) / infer, 1) if infer else None,
            "search": search, "params": None if model is None else model.fit_info_.get("params_total")}


def run(path: str | Path, out: Path, *, families: list[str] | None = None, seed: int = 13, device: str = "auto",
        validation_fraction: float = 0.25, max_train: int | None = None, max_test: int | None = None,
        selection: str = "auto", folds: int = 5, repeats: int = 2,
        announce: Callable[[str], None] = print) -> dict:
    """``selection``: ``holdout`` (settings and threshold chosen on the validation part), ``cv`` (repeated
    stratified K-fold over the training half, see run_family_cv) or ``auto``: cv when the validation part holds
    fewer than FEW_POSITIVES (20) security reports."""
    from ..evaluation.decision import FEW_POSITIVES
    from ..models.base import environment

    if selection not in ("auto", "holdout", "cv"):
        raise DataError(f"selection {selection!r} is unknown", hint="auto, holdout or cv")

    families = list(families or DEFAULT_FAMILIES)
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise DataError(f"unknown famil{'y' if len(unknown) == 1 else 'ies'} {unknown}",
                        hint=f"choose from {', '.join(FAMILIES)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = load(path, validation_fraction=validation_fraction, seed=seed, max_train=max_train, max_test=max_test)
    count = lambda ex: f"{len(ex)} ({sum(lab == POSITIVE for lab in ex.labels)} security)"  # noqa: E731
    announce(f"{path}: train {count(data.train)}, validation {count(data.validation)}, test {count(data.test)}")
    val_positives = sum(lab == POSITIVE for lab in data.validation.labels)
    method = selection if selection != "auto" else ("cv" if val_positives < FEW_POSITIVES else "holdout")
    if method == "cv":
        announce(f"model choice by {folds}-fold cross-validation x {repeats} over the training half"
                 + (f" (the validation part holds {val_positives} security reports, under {FEW_POSITIVES})"
                    if selection == "auto" else ""))
    env = environment()
    results = {"benchmark": "farsec", "data": str(path), "project": data.project,
               "split": "train = older half (minus a stratified validation part), test = newer half",
               "validation_fraction": validation_fraction, "setting": "reduced" if max_train or max_test else "full",
               "selection": {"method": method, **({"folds": folds, "repeats": repeats} if method == "cv" else {})},
               "n": {"train": len(data.train), "validation": len(data.validation), "test": len(data.test),
                     "train_security": sum(lab == POSITIVE for lab in data.train.labels),
                     "test_security": sum(lab == POSITIVE for lab in data.test.labels)},
               "hardware": env["hardware"], "versions": env["versions"], "published": PUBLISHED,
               "target_g_measure": TARGET_G, "rows": []}
    kept = [r for r in earlier_results(out, results, ("data", "n", "validation_fraction", "setting", "selection"))
            if r.get("name") not in families]
    if kept:
        announce(f"keeping {len(kept)} earlier famil{'y' if len(kept) == 1 else 'ies'} from {out / 'results.json'} "
                 f"(same data and split): {', '.join(r['name'] for r in kept)}")
    for i, name in enumerate(families, 1):
        announce(f"[{i}/{len(families)}] {name}")
        try:
            row = (run_family_cv(name, data, folds=folds, repeats=repeats, seed=seed, device=device, out=out,
                                 announce=announce) if method == "cv"
                   else run_family(name, data, seed=seed, device=device, out=out, announce=announce))
            t = row["test"]
            announce(f"    test: pd {100 * t['pd']:.1f}, pf {100 * t['pf']:.1f}, g {100 * t['g_measure']:.1f}, "
                     f"PR-AUC {t['pr_auc']:.3f}")
        except Exception as exc:  # recorded with its reason; the other families still run
            row = {"name": name, "status": "failed", "error": " ".join(f"{type(exc).__name__}: {exc}".split())}
            announce(f"    FAILED: {row['error']}")
        results["rows"].append(row)
        write(results, out, data)
    results["rows"] = _in_family_order(kept + results["rows"])
    write(results, out, data)
    return results


def _in_family_order(rows: list[dict]) -> list[dict]:
    order = {name: i for i, name in enumerate(FAMILIES)}
    return sorted(rows, key=lambda r: order.get(r.get("name"), len(order)))


def best_row(results: dict) -> dict | None:
    """The family that won on validation (never chosen by its test figure)."""
    ok = [r for r in results["rows"] if r.get("status") == "ok"]
    return max(ok, key=lambda r: (r["validation"]["g_measure"], r["validation"]["pr_auc"] or 0)) if ok else None


def _selection_line(results: dict) -> str:
    sel = results.get("selection") or {"method": "holdout"}
    if sel["method"] == "cv":
        return (f"Settings, family and threshold chosen by {sel['folds']}-fold cross-validation x {sel['repeats']} "
                "over the training half (threshold on the pooled out-of-fold scores; validation g = mean ± sd over "
                "the folds), then refitted on the whole training half.")
    return "Settings, family and threshold chosen on the validation part of the training half."


def write(results: dict, out: Path, data: FarsecData | None = None) -> None:
    out = Path(out)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    best = best_row(results)
    pct = lambda v: "–" if v is None else f"{100 * v:.1f}"  # noqa: E731
    lines = [f"# FARSEC security bug report prediction: {results['project']}", "",
             f"Data `{results['data']}`; {results['split']}. Train {results['n']['train']} "
             f"({results['n']['train_security']} security), validation {results['n']['validation']}, test "
             f"{results['n']['test']} ({results['n']['test_security']} security). Setting: {results['setting']}.",
             f"Hardware: {results['hardware'].get('processor')}, {results['hardware'].get('cpu_count')} CPUs"
             + (f", {results['hardware']['gpu']}" if results['hardware'].get('gpu') else ", no GPU") + ".",
             _selection_line(results), "",
             "| family | chosen on validation | pd | pf | g-measure | PR-AUC | F1 | MCC | recall@1%FPR | "
             "validation g | train s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        if r.get("status") != "ok":
            lines.append(f"| {r['name']} | failed: {r['error']} |  |  |  |  |  |  |  |  |  |")
            continue
        t = r["test"]
        chosen = ", ".join(f"{k}={v}" for k, v in r["chosen"].items())
        mark = " **(best)**" if best is r else ""
        lines.append(f"| {r['name']}{mark} | {chosen} | {pct(t['pd'])} | {pct(t['pf'])} | {pct(t['g_measure'])} | "
                     f"{pct(t['pr_auc'])} | {pct(t['f1'])} | {t['mcc']:.3f} | {pct(t['recall_at_fpr'].get('0.01'))} "
                     f"| {pct(r['validation']['g_measure'])}"
                     + (f" ± {pct(r['validation_sd']['g_measure'])}" if r.get("validation_sd") else "")
                     + f" | {r['train_seconds']:.0f} |")
    lines += ["", "Published on this split (pd / pf / g-measure, %):", ""]
    lines += [f"- {p['name']}: {p['pd']} / {p['pf']} / {p['g_measure']}" for p in results["published"]]
    if best is not None:
        g = 100 * best["test"]["g_measure"]
        verdict = "met" if g >= results["target_g_measure"] else "not met"
        lines += ["", f"Target g-measure ≥ {results['target_g_measure']:.0f} for the family chosen on validation "
                      f"(`{best['name']}`): **{verdict}** ({g:.1f})."]
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _plot(results, out, data)


def _plot(results: dict, out: Path, data: FarsecData | None) -> None:
    """Test precision-recall curves of every family, the chosen operating points marked."""
    if data is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    truth = np.asarray([lab == POSITIVE for lab in data.test.labels])
    fig, ax = plt.subplots(figsize=(6.5, 5))
    try:
        for r in results["rows"]:
            path = out / "rows" / r["name"] / "test_scores.npy"
            if r.get("status") != "ok" or not path.exists():
                continue
            scores = np.load(path)
            p, rec, _ = precision_recall_curve(truth, scores)
            line, = ax.plot(rec, p, label=f"{r['name']} (PR-AUC {r['test']['pr_auc']:.3f})")
            ax.plot(r["test"]["pd"], r["test"]["precision"], "o", color=line.get_color())
        ax.axhline(truth.mean(), color="grey", linestyle=":", linewidth=1, label="chance (prevalence)")
        ax.set_xlabel("recall (pd)")
        ax.set_ylabel("precision")
        ax.set_title("Test precision-recall; dots: thresholds chosen on validation")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "pr_curves.png", dpi=120)
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------------------------------- model-choice study
def small_project(path: str | Path, out_file: Path, *, size: int = 1000, positives: int = 40, seed: int = 0) -> Path:
    """A small project drawn from a big FARSEC-format file: ``positives`` security reports and ``size - positives``
    others at random, each keeping its train/test half (the FARSEC small projects have about 1,000 reports, a few
    percent security: on one, the validation part holds about four)."""
    import pandas as pd

    frame = pd.read_csv(path, dtype={"security": int, "split": str})
    rng = np.random.default_rng(seed)
    sec, other = frame[frame["security"] == 1], frame[frame["security"] == 0]
    if len(sec) < positives or len(other) < size - positives:
        raise DataError(f"{path} has {len(sec)} security and {len(other)} other reports: too few for a draw of "
                        f"{positives} + {size - positives}", where=str(path))
    pick = pd.concat([sec.iloc[rng.choice(len(sec), positives, replace=False)],
                      other.iloc[rng.choice(len(other), size - positives, replace=False)]]).sort_index()
    out_file.parent.mkdir(parents=True, exist_ok=True)
    pick.to_csv(out_file, index=False)
    return out_file


def choice_study(path: str | Path, out: Path, *, families: list[str] | None = None, draws: int = 5,
                 size: int = 1000, positives: int = 40, folds: int = 5, repeats: int = 2, seed: int = 13,
                 device: str = "auto", within: float = 0.05, announce: Callable[[str], None] = print) -> dict:
    """How often the family chosen without looking at the test half scores within ``within`` (5 g-measure points)
    of the best family on that test half, over ``draws`` small projects, choosing on one validation part
    (holdout) and by cross-validation (cv)."""
    from ..models.base import environment

    out = Path(out)
    draws_out = []
    for d in range(draws):
        data = small_project(path, out / "draws" / str(d) / "data.csv", size=size, positives=positives, seed=seed + d)
        record = {"draw": d}
        for method in ("holdout", "cv"):
            announce(f"draw {d + 1}/{draws}, {method}")
            res = run(data, out / "draws" / str(d) / method, families=families, seed=seed, device=device,
                      selection=method, folds=folds, repeats=repeats, announce=lambda m: None)
            ok = [r for r in res["rows"] if r.get("status") == "ok"]
            chosen = best_row(res)
            top = max(r["test"]["g_measure"] for r in ok)
            failed = {r["name"]: r.get("error", "") for r in res["rows"] if r.get("status") != "ok"}
            record[method] = {"chosen": chosen["name"], "chosen_test_g": chosen["test"]["g_measure"],
                              "best": max(ok, key=lambda r: r["test"]["g_measure"])["name"], "best_test_g": top,
                              "within": chosen["test"]["g_measure"] >= top - within,
                              "test_g": {r["name"]: r["test"]["g_measure"] for r in ok}, "failed": failed}
            for fam, why in failed.items():  # a failed family shrinks the comparison: said, never silent
                announce(f"    {fam} failed ({why}); this draw compares the others only")
            announce(f"    chose {chosen['name']} (test g {100 * chosen['test']['g_measure']:.1f}); best "
                     f"{record[method]['best']} {100 * top:.1f}")
        draws_out.append(record)
    summary = {m: {"within": int(sum(r[m]["within"] for r in draws_out)), "draws": len(draws_out),
                   "mean_regret": float(np.mean([r[m]["best_test_g"] - r[m]["chosen_test_g"] for r in draws_out]))}
               for m in ("holdout", "cv")}
    env = environment()
    results = {"benchmark": "farsec-model-choice", "data": str(path), "size": size, "positives": positives,
               "families": families or list(DEFAULT_FAMILIES), "folds": folds, "repeats": repeats,
               "within_points": 100 * within, "draws": draws_out, "summary": summary,
               "hardware": env["hardware"], "versions": env["versions"]}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    lines = [f"# Model choice with few positives: {draws} small projects drawn from `{path}`", "",
             f"Each draw: {size} reports, {positives} security, keeping the file's train/test halves. Families: "
             f"{', '.join(results['families'])}. Chosen on the validation part (holdout) or by {folds}-fold "
             f"cross-validation x {repeats} (cv); a choice counts when its test g-measure is within "
             f"{100 * within:.0f} points of the best family's on that draw.", "",
             f"| method | chosen within {100 * within:.0f} points of the best | mean regret (g points) |", "|---|---|---|"]
    for m in ("holdout", "cv"):
        lines.append(f"| {m} | {summary[m]['within']} of {summary[m]['draws']} | {100 * summary[m]['mean_regret']:.1f} |")
    lines += ["", "| draw | holdout: chosen (test g) | cv: chosen (test g) | best (test g) |", "|---|---|---|---|"]
    for r in draws_out:
        lines.append(f"| {r['draw']} | {r['holdout']['chosen']} ({100 * r['holdout']['chosen_test_g']:.1f}) | "
                     f"{r['cv']['chosen']} ({100 * r['cv']['chosen_test_g']:.1f}) | {r['cv']['best']} "
                     f"({100 * r['cv']['best_test_g']:.1f}) |")
    failures = [f"draw {r['draw']} {m}: {fam} ({why})" for r in draws_out for m in ("holdout", "cv")
                for fam, why in r[m]["failed"].items()]
    if failures:
        lines += ["", f"Failed rows ({len(failures)}; those draws compare the other families only): "
                  + "; ".join(failures) + "."]
    lines += ["", f"Hardware: {hardware_line(env['hardware'])}.",
              f"Command: `transferlab bench farsec-choice --data {path} --draws {draws} --project-size {size} "
              f"--project-positives {positives} --rows {','.join(results['families'])} --folds {folds} "
              f"--repeats {repeats} --seed {seed} --out OUT`."]
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return results
