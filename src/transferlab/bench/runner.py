"""Run a suite's rows on one split, the same data for every row, and record accuracy and cost per row.

A row that cannot run (a model that is not installed, a library that is missing, a crash) is recorded with its
reason and the run goes on: no row is silently skipped.  Results merge into ``DIR/results.json`` by row name, so
a benchmark can be completed in parts (CPU rows now, GPU rows later) and re-running a row replaces it.
"""

from __future__ import annotations

import gc
import json
import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.loading import load_parts
from ..data.records import Examples
from ..data.splits import subsample
from ..errors import TransferLabError
from .measure import PeakMemory, Stopwatch
from .peers import PEERS, Outcome
from .recipes import Recipe, Suite

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    quick: bool = False
    overrides: dict | None = None  # max_train, max_validation, max_test, max_length, epochs from the command line
    device: str = "auto"
    keep_models: bool = False
    seed: int = 13

    @property
    def setting(self) -> str:
        if self.quick:
            return "quick"
        return "reduced" if any(v is not None for v in (self.overrides or {}).values()) else "full"


def cut(parts: dict[str, Examples], settings: dict, seed: int) -> dict[str, Examples]:
    """Subsample each part as the settings ask (stratified, seeded: every row of a run sees the same rows)."""
    out = dict(parts)
    for part, key in (("train", "max_train"), ("validation", "max_validation"), ("test", "max_test")):
        n = settings.get(key)
        if n and len(out[part]) > n:
            out[part] = subsample(out[part], int(n), seed=seed)
    return out


def run_transferlab(recipe: Recipe, settings: dict, train: Examples, val: Examples | None, test: Examples,
                    row_dir: Path, options: RunOptions) -> Outcome:
    from ..models.classifier import TextClassifier

    model = dict(recipe.model)
    train_cfg = dict(recipe.train)
    for key in ("max_length",):
        if key in settings:
            model[key] = settings[key]
    for key in ("epochs", "batch_size"):
        if key in settings:
            train_cfg[key] = settings[key]
    train_cfg.setdefault("seed", options.seed)
    clf = TextClassifier(**model, **train_cfg, device=options.device)
    with Stopwatch() as sw:
        clf.fit(train, validation=val, out_dir=row_dir, save_model=options.keep_models)
    with Stopwatch() as inf:
        proba = clf.predict_proba(test, show_progress=True)
    mc = clf.model_config
    steps = [h.get("step_seconds") for h in clf.history_]
    return Outcome(clf.labels_, proba, sw.seconds, inf.seconds, len(clf.history_), clf.fit_info_["params_total"],
                   clf.fit_info_["params_trainable"], mc.encoder, mc.head, mc.strategy, history=clf.history_,
                   step_seconds=sum(steps) if steps and None not in steps else None)


def run_row(recipe: Recipe, settings: dict, parts: dict[str, Examples], row_dir: Path, options: RunOptions,
            slices=()) -> dict:
    """Train and score one row; the returned dict is one ``results.json`` row (with each of the suite's
    ``slices`` of the test part beside the whole)."""
    from ..evaluation.metrics import classification_report
    from ..evaluation.plots import plot_confusion, plot_curves

    data = cut(parts, settings, options.seed)
    train, val, test = data["train"], data["validation"], data["test"]
    val = val if len(val) else None
    row_dir.mkdir(parents=True, exist_ok=True)
    with PeakMemory() as mem:
        if recipe.kind == "transferlab":
            outcome = run_transferlab(recipe, settings, train, val, test, row_dir, options)
        else:
            outcome = PEERS[recipe.kind](recipe.model, {"seed": options.seed, **recipe.train}, settings, train, val,
                                         test, row_dir, options.device)
    report = classification_report(test.labels, outcome.proba, outcome.labels)
    slices = slices if not test.multilabel else ()  # slice metrics are single-label
    if slices:
        from ..evaluation.slices import slice_report

        predictions = [outcome.labels[j] for j in np.asarray(outcome.proba).argmax(1)]
        report["slices"] = slice_report(test.texts, test.columns, test.labels, predictions, outcome.labels,
                                        list(slices), seed=options.seed)
    (row_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    files = {"report": "report.json"}
    cm = report.get("confusion_matrix")
    if cm and "matrix" in cm:
        plot_confusion(cm["matrix"], cm["labels"], row_dir / "confusion.png", title=f"{recipe.name}: test")
        files["confusion"] = "confusion.png"
    if outcome.history:
        if recipe.kind != "transferlab":  # our rows wrote these per epoch already
            with open(row_dir / "metrics.jsonl", "w", encoding="utf-8") as f:
                f.writelines(json.dumps(r) + "\n" for r in outcome.history)
            plot_curves(outcome.history, row_dir / "curves.png")
        files.update(metrics="metrics.jsonl", curves="curves.png")
    n_test = len(test)
    return {
        "name": recipe.name, "title": recipe.title, "family": recipe.family, "kind": recipe.kind,
        "encoder": outcome.encoder, "head": outcome.head, "strategy": outcome.strategy,
        "status": "ok", "error": None,
        "test_accuracy": report["accuracy"], "macro_f1": report["macro_f1"], "roc_auc": report.get("roc_auc"),
        "train_seconds": round(outcome.train_seconds, 2),
        "train_step_seconds": None if outcome.step_seconds is None else round(outcome.step_seconds, 2),
        # training steps alone when the row can tell them apart (validation and set-up reported in train_seconds)
        "train_samples_per_second": round(len(train) * outcome.epochs / (outcome.step_seconds or outcome.train_seconds),
                                          2) if (outcome.step_seconds or outcome.train_seconds) else None,
        "inference_docs_per_second": round(n_test / outcome.inference_seconds, 2) if outcome.inference_seconds else None,
        "peak_memory_mb": round(mem.gpu_peak_mb if mem.gpu_peak_mb is not None else mem.peak_mb, 1),
        "peak_memory_kind": "cuda allocated" if mem.gpu_peak_mb is not None else "process RSS",
        "params_total": int(outcome.params_total), "params_trainable": int(outcome.params_trainable),
        "seed_reference": _reference(recipe),
        "n_train": len(train), "n_validation": len(val) if val is not None else 0, "n_test": n_test,
        "epochs": outcome.epochs, "max_length": settings.get("max_length"), "files": files,
        **({"slices": report["slices"]} if slices else {}),
    }


def failed_row(recipe: Recipe, exc: BaseException) -> dict:
    if isinstance(exc, TransferLabError):
        reason = f"{exc.where}: {exc.message}" if exc.where else exc.message
    else:
        reason = f"{type(exc).__name__}: {exc} (traceback in rows/{recipe.name}/error.txt)"
    if isinstance(exc, TransferLabError) and exc.hint:
        reason += f" ({exc.hint})"
    reason = " ".join(reason.split())  # one line: it goes into a table cell
    return {"name": recipe.name, "title": recipe.title, "family": recipe.family, "kind": recipe.kind,
            "encoder": recipe.model.get("encoder"), "head": recipe.model.get("head"),
            "strategy": recipe.model.get("strategy"), "status": "failed", "error": reason,
            "test_accuracy": None, "macro_f1": None, "train_seconds": None, "train_samples_per_second": None,
            "inference_docs_per_second": None, "peak_memory_mb": None, "params_total": None,
            "params_trainable": None, "seed_reference": _reference(recipe)}


def not_run_row(recipe: Recipe) -> dict:
    row = failed_row(recipe, RuntimeError())
    row.update(status="not run", error=f"to run it: transferlab bench {_suite_argument(recipe.path.parent)} "
                                       f"--rows {recipe.name}", setting=None)
    return row


def _suite_argument(folder: Path) -> str:
    """What names this suite on the command line: a shipped suite's name, else its folder (relative where it can
    be; a folder's bare name would not be found)."""
    from .recipes import builtin_suites

    folder = Path(folder).resolve()
    for name, path in builtin_suites().items():
        if Path(path).resolve() == folder:
            return name
    try:
        return str(folder.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(folder)


def _reference(recipe: Recipe) -> dict | None:
    ref = recipe.seed_reference
    if not ref:
        return None
    return {"model": ref.get("model", ""), "accuracy": round(float(ref["accuracy"]) / 100, 4)}


def run_suite(suite: Suite, rows: list[Recipe], out: Path, options: RunOptions, *, data_overrides: dict | None = None,
              announce: Callable[[str], None] = print) -> dict:
    """Run ``rows`` and merge them into ``out/results.json``; returns the merged results document."""
    from ..models.base import environment
    from .report import load_results, write_outputs

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = suite.data_spec(**(data_overrides or {}))
    started = time.perf_counter()
    parts, read_report = load_parts(spec, seed=options.seed)
    if read_report.skipped:
        announce(f"warning: {read_report.summary()}")
    announce(f"data {spec.path}: train {len(parts['train'])}, validation {len(parts['validation'])}, "
             f"test {len(parts['test'])} (read in {time.perf_counter() - started:.1f}s)")
    env = environment()
    results = load_results(out) or {}
    merged = {r["name"]: r for r in results.get("rows", [])}
    for i, recipe in enumerate(rows, 1):
        settings = recipe.settings(suite.quick if options.quick else None, options.overrides)
        announce(f"[{i}/{len(rows)}] {recipe.name} ({recipe.title}) {settings or ''}")
        try:
            row = run_row(recipe, settings, parts, out / "rows" / recipe.name, options, slices=suite.slices)
        except Exception as exc:  # one row's failure is recorded with its reason; the others still run
            if not isinstance(exc, TransferLabError):
                log.debug("row %s failed", recipe.name, exc_info=True)
                (out / "rows" / recipe.name).mkdir(parents=True, exist_ok=True)
                (out / "rows" / recipe.name / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
            row = failed_row(recipe, exc)
        row.update(setting=options.setting, device=_device_name(options.device), hardware=env["hardware"],
                   finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        if row["status"] == "ok":
            announce(f"    accuracy {row['test_accuracy']:.4f}, trained in {row['train_seconds']:.0f}s, "
                     f"{row['inference_docs_per_second']} docs/s")
        else:
            announce(f"    FAILED: {row['error']}")
        merged[recipe.name] = row
        for other in suite.rows:  # every row of the suite is in the table: the ones not run yet say so
            if other.name not in merged or merged[other.name].get("status") == "not run":
                merged[other.name] = not_run_row(other)
        order = [r.name for r in suite.rows]
        results = {
            "benchmark": suite.name, "description": suite.description, "split": spec.split,
            "data": {"path": spec.path, "text_col": spec.text_col, "label_col": spec.label_col,
                     "pair_col": spec.pair_col, "n_train": len(parts["train"]),
                     "n_validation": len(parts["validation"]), "n_test": len(parts["test"])},
            "hardware": env["hardware"], "versions": env["versions"], "targets": suite.targets,
            "rows": sorted(merged.values(), key=lambda r: (order.index(r["name"]) if r["name"] in order else 999,
                                                          r["name"])),
        }
        write_outputs(results, out)  # after every row: a long run can be read while it goes on
        gc.collect()
        _free_cuda()
    return results


def _device_name(device: str) -> str:
    import torch

    if device != "cpu" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return "cpu"


def _free_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def accuracy_or_nan(row: dict) -> float:
    value = row.get("test_accuracy")
    return float(value) if isinstance(value, (int, float)) else float(np.nan)
