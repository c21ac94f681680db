"""``transferlab bench speed``: inference speed of one fine-tuned MiniLM classifier on the CPU, every runtime side by
side in one run, on the same IMDB test reviews and the same cores.

Rows: ``eager`` (PyTorch float32, the default path before ONNX), ``eager-bf16`` (PyTorch in bf16, on
CPUs with AMX or AVX-512 BF16), ``onnx-fp32``, ``onnx-int8`` and ``openvino`` (ours: ``transferlab export``; OpenVINO
in bf16 where native), and the peers
``pipeline`` (a transformers text-classification pipeline over the same MiniLM, as users run it) and ``st-onnx`` / ``st-onnx-int8`` (sentence-transformers' own ONNX backend and its int8
recipe, run by ``--peer-python``: it needs transformers < 4.58, see scripts/peer-venv.sh).

Speed (128, 256, 512 tokens): documents per second over ``n_speed`` reviews, measured **side by side**: our
runtimes and the pipeline are loaded in one process and run batch by batch in turn, each batch's fastest of
``repeats`` passes kept (``_timed_side_by_side``), so that a machine whose speed wanders (a shared VM) slows every
row alike and the ratios to eager hold.  sentence-transformers' rows are timed the same way in the peer's own
environment beside its PyTorch float32 backend, and their ratio is to that anchor.  Accuracy and peak memory come
from a fresh process per row (so each row's peak memory is its own): ours score ``n_accuracy`` reviews at the
model's own length; the peers compute the same encoder but not this model's head (the pipeline's head is new,
sentence-transformers outputs embeddings), so their accuracy is not reported.  The model: ``--model DIR`` or, by
default, MiniLM fine-tuned here on ``max_train`` seed-protocol training reviews (kept in ``OUT/models/``) and
exported with int8 (its check on validation data recorded).  Hardware and thread count are recorded.
"""

from __future__ import annotations

import json
import subprocess
import warnings
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

DATA = dict(path="../shared/data/imdb/movie_reviews.csv.bz2", text_col="review", label_col="sentiment", split="seed")
LENGTHS = (128, 256, 512)
OURS = ("eager", "eager-bf16", "onnx-fp32", "onnx-int8", "openvino")
PEERS = ("pipeline", "st-onnx", "st-onnx-int8")


def _timed(fn, texts: list[str], *, batch_size: int = 32, repeats: int = 3, clock=time.perf_counter) -> float:
    """Docs/s of one ``fn`` over ``texts`` (the rule of `_timed_side_by_side`, for a single runtime)."""
    return _timed_side_by_side({"fn": fn}, texts, batch_size=batch_size, repeats=repeats, clock=clock)["fn"]


def _timed_side_by_side(fns: dict[str, Callable], texts: list[str], *, batch_size: int = 32, repeats: int = 3,
                        clock=time.perf_counter, settle: float = 0.0) -> dict[str, float]:
    """Docs/s of each runtime in ``fns`` over the same ``texts``, measured side by side, robust to a shared machine.

    The texts are sorted by length and cut into batches, as every inference path batches them.  Batch by batch,
    every runtime runs that batch in turn (the order rotated from batch to batch), so a slow spell of the machine
    falls on all of them alike instead of on whichever row happened to run then; the whole pass runs ``repeats``
    times and each (runtime, batch) keeps its fastest time (timeit's rule: a disturbance only ever adds time).
    Docs/s is the number of texts over the sum of a runtime's fastest times.  ``settle`` seconds pass, untimed,
    between runtimes, so that one runtime's thread pool stops spinning before the next one is timed.
    """
    import math

    names = list(fns)
    for fn in fns.values():
        fn(texts[:16])  # warm-up: first-call allocations and graph set-up are not throughput
    order = sorted(texts, key=len)
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    best = {n: [math.inf] * len(batches) for n in names}
    for rep in range(max(1, repeats)):
        for i, batch in enumerate(batches):
            shift = (i + rep) % len(names)
            for name in names[shift:] + names[:shift]:
                if settle:
                    time.sleep(settle)
                t = clock()
                fns[name](batch)
                best[name][i] = min(best[name][i], clock() - t)
    return {n: len(texts) / sum(best[n]) for n in names}


def _ours(model: str, variant: str, threads: int):
    """The classifier at ``model`` on one of our runtimes."""
    from ..models.classifier import TextClassifier
    from ..runtime.onnx import FP32, INT8, OPENVINO, SUBDIR, OnnxNet, OvNet, bf16_runtime

    clf = TextClassifier.load(model, device="cpu", runtime="torch")
    if variant == "eager-bf16":
        clf.use_runtime(bf16_runtime(clf))
    elif variant == "openvino":
        clf.use_runtime(OvNet(Path(model) / SUBDIR / OPENVINO, threads))
    elif variant != "eager":
        clf.use_runtime(OnnxNet(Path(model) / SUBDIR / (FP32 if variant == "onnx-fp32" else INT8), threads,
                                kind=variant.split("-")[1]))
    return clf


def _pipelines(base: str, lengths: list[int]):
    """The transformers text-classification pipeline over the base MiniLM (a new two-label head), one per length."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    tok = AutoTokenizer.from_pretrained(base)
    net = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2, dtype=torch.float32)
    return {length: pipeline("text-classification", model=net, tokenizer=tok, device="cpu", truncation=True,
                             max_length=length) for length in lengths}


def measure_ours(model: str, variant: str, texts: list[str], labels: list[str], threads: int) -> dict:
    """One of our rows, in its own process: accuracy at the model's length and that process's peak memory."""
    import numpy as np
    import torch

    from .measure import PeakMemory

    torch.set_num_threads(threads)
    with PeakMemory() as mem:
        clf = _ours(model, variant, threads)
        t = time.perf_counter()
        predicted = clf.predict(texts)
        seconds = time.perf_counter() - t
    return {"name": variant, "status": "ok", "peak_mb": round(mem.peak_mb),
            "accuracy": float(np.mean([p == g for p, g in zip(predicted, labels)])),
            "accuracy_length": clf.backend_.cfg.max_length, "accuracy_docs_per_second": len(texts) / seconds}


def measure_pipeline(base: str, texts: list[str], lengths: list[int], threads: int, batch_size: int) -> dict:
    """The pipeline row's own process: its peak memory over the texts at every length (speed is measured apart)."""
    import torch
    import transformers

    from .measure import PeakMemory

    torch.set_num_threads(threads)
    with PeakMemory() as mem:
        for length, pipe in _pipelines(base, lengths).items():
            pipe(texts, batch_size=batch_size)
    return {"name": "pipeline", "status": "ok", "peak_mb": round(mem.peak_mb), "accuracy": None,
            "versions": {"transformers": transformers.__version__}}


def measure_speed(model: str, variants: list[str], base: str | None, texts: list[str], lengths: list[int],
                  threads: int, batch_size: int, repeats: int) -> dict[str, dict[str, float]]:
    """Docs/s of our runtimes (and the pipeline when ``base`` is given) side by side in one process, per length."""
    import torch

    torch.set_num_threads(threads)
    models = {v: _ours(model, v, threads) for v in variants}
    pipes = _pipelines(base, lengths) if base else {}
    speed: dict[str, dict[str, float]] = {v: {} for v in [*variants, *(["pipeline"] if base else [])]}
    for length in lengths:
        for clf in models.values():
            clf.backend_.cfg.max_length = length
        fns = {v: clf.predict_proba for v, clf in models.items()}
        if base:
            fns["pipeline"] = lambda xs, p=pipes[length]: p(xs, batch_size=batch_size)
        for name, dps in _timed_side_by_side(fns, texts, batch_size=batch_size, repeats=repeats,
                                             settle=0.02).items():
            speed[name][str(length)] = dps
    return speed


def measure_st_onnx(peer_python: str, base: str, texts: list[str], lengths: list[int], threads: int,
                    batch_size: int, work: Path, repeats: int = 3) -> list[dict]:
    job = {"model": base, "texts": texts, "lengths": lengths, "threads": threads, "batch_size": batch_size,
           "work": str(work), "repeats": repeats}
    proc = subprocess.run([peer_python, str(Path(__file__).with_name("speed_peer_st.py"))], input=json.dumps(job),
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return [{"name": n, "status": "failed", "error": f"peer exited {proc.returncode}: {why}"}
                for n in ("st-onnx", "st-onnx-int8")]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return [{"name": n, "status": "ok", "docs_per_second": out["rows"][n], "peak_mb": round(out["peak_mb"]),
             "peak_note": "both peer rows and their anchor in one process", "accuracy": None,
             "anchor": "sentence-transformers' PyTorch float32 backend, timed side by side with it",
             "anchor_docs_per_second": out["rows"]["st-torch"], "versions": out["versions"],
             "quantization": out.get("quantization")}
            for n in ("st-onnx", "st-onnx-int8")]


def _in_process(fn, *args):
    """Run ``fn(*args)`` in a fresh spawned process: its own peak memory, no state left by the row before."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def train_default_model(out: Path, spec, *, max_train: int, max_validation: int, max_length: int, epochs: int,
                        announce: Callable[[str], None]) -> Path:
    """MiniLM fine-tuned on a seed-protocol subsample, exported to ONNX with int8 (reused when present)."""
    from ..data.loading import DataSpec, load_parts
    from ..models.classifier import TextClassifier
    from ..runtime.onnx import export_model

    folder = out / "models" / "minilm-imdb"
    if not (folder / "config.json").is_file():
        # the reduced data spec is recorded with the model, so the export check re-reads the same validation rows
        spec = DataSpec(**{**spec.to_dict(), "max_train": max_train, "max_validation": max_validation})
        parts, _ = load_parts(spec, seed=13)
        announce(f"fine-tuning MiniLM on {len(parts['train'])} training reviews ({max_length} tokens, "
                 f"{epochs} epoch(s))")
        clf = TextClassifier("minilm", strategy="finetune", max_length=max_length, epochs=epochs, seed=13)
        clf.fit(parts["train"], validation=parts["validation"], out_dir=folder, data_info={"data": spec.to_dict()})
    if not (folder / "onnx" / "export.json").is_file():
        from ..runtime.onnx import bf16_supported, openvino_installed

        # force: a runtime that fails its check is still timed here (the bench reports the failed check beside it)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_model(folder, quantize="int8", formats=["onnx"] + (["openvino"] if openvino_installed() else [])
                         + (["bf16"] if bf16_supported() else []), force=True, announce=announce)
    return folder


def run(out: str | Path, *, model: str | None = None, data: str | None = None, text_col: str | None = None,
        label_col: str | None = None, split: str | None = None, lengths=LENGTHS, n_speed: int = 400,
        n_accuracy: int = 2000, rows: list[str] | None = None, peer_python: str | None = None,
        threads: int | None = None, batch_size: int = 32, repeats: int = 3, max_train: int = 2000,
        max_validation: int = 1000, max_length: int = 256, epochs: int = 1,
        announce: Callable[[str], None] = print) -> dict:
    from ..data.loading import DataSpec, load_parts, subsample
    from ..encoders.zoo import resolve
    from ..errors import ConfigError
    from ..models.base import environment
    from ..runtime.onnx import OPENVINO, RECORD, SUBDIR, cpu_threads

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = list(rows or (OURS + PEERS))
    unknown = [r for r in rows if r not in OURS + PEERS]
    if unknown:
        raise ConfigError(f"unknown speed row(s) {unknown}", hint=f"choose from {', '.join(OURS + PEERS)}")
    threads = threads or cpu_threads()
    spec = DataSpec(path=data or DATA["path"], text_col=text_col or DATA["text_col"],
                    label_col=label_col or DATA["label_col"], split=split or DATA["split"])
    folder = Path(model) if model else train_default_model(out, spec, max_train=max_train,
                                                           max_validation=max_validation, max_length=max_length,
                                                           epochs=epochs, announce=announce)
    record_path = folder / SUBDIR / RECORD
    if any(r.startswith("onnx") for r in rows) and not record_path.is_file():
        raise ConfigError("the model has no ONNX export", where=str(folder),
                          hint=f"transferlab export {folder} --format onnx --quantize int8")
    export = json.loads(record_path.read_text(encoding="utf-8")) if record_path.is_file() else None
    parts, _ = load_parts(spec, seed=13)
    test = subsample(parts["test"], n_accuracy, seed=13)
    texts, labels = list(test.texts), list(test.labels)
    base = resolve(json.loads((folder / "config.json").read_text(encoding="utf-8"))["model"]["encoder"]).location

    from ..runtime.onnx import bf16_supported

    results_rows = []
    if "eager-bf16" in rows and not bf16_supported():
        rows.remove("eager-bf16")
        results_rows.append({"name": "eager-bf16", "status": "not run", "error": "this CPU has no native bf16 (AMX or "
                             "AVX-512 BF16)"})
    if "openvino" in rows and not (folder / SUBDIR / OPENVINO).is_file():
        rows.remove("openvino")
        results_rows.append({"name": "openvino", "status": "not run", "error": "the model has no OpenVINO export "
                             f"(transferlab export {folder} --format onnx,openvino; pip install 'transferlab[openvino]')"})
    # 1. each row in its own process: accuracy at the model's length and the row's own peak memory
    ours = [n for n in rows if n in OURS]
    for step, name in enumerate([n for n in rows if n in OURS or n == "pipeline"], 1):
        announce(f"[{step}] {name}: accuracy and peak memory in a fresh process")
        try:
            if name in OURS:
                row = _in_process(measure_ours, str(folder), name, texts, labels, threads)
            else:
                row = _in_process(measure_pipeline, base, texts[:n_speed], list(lengths), threads, batch_size)
        except Exception as exc:  # recorded with its reason; the other rows still run
            row = {"name": name, "status": "failed", "error": " ".join(f"{type(exc).__name__}: {exc}".split())}
        results_rows.append(row)
        if row.get("accuracy") is not None:
            announce(f"    accuracy {100 * row['accuracy']:.2f}, peak {row['peak_mb']} MiB")
    # 2. speed, side by side in one process: every runtime of ours that loaded, and the pipeline, batch by batch
    timed = [r["name"] for r in results_rows if r["status"] == "ok"]
    if timed:
        announce(f"speed, side by side ({', '.join(timed)}): {repeats} passes over {min(n_speed, len(texts))} "
                 f"reviews at {', '.join(map(str, lengths))} tokens")
        try:
            speed = _in_process(measure_speed, str(folder), [n for n in timed if n in OURS],
                                base if "pipeline" in timed else None, texts[:n_speed], list(lengths), threads,
                                batch_size, repeats)
        except Exception as exc:
            why = " ".join(f"{type(exc).__name__}: {exc}".split())
            speed = {}
            for r in results_rows:
                if r["status"] == "ok":
                    r.update(status="failed", error=f"speed: {why}")
        for r in results_rows:
            if r["name"] in speed:
                r["docs_per_second"] = speed[r["name"]]
                announce(f"    {r['name']}: " + ", ".join(f"{k} tokens {v:.1f} docs/s" for k, v in speed[r["name"]].items()))
    # 3. the sentence-transformers peer, in its own environment, side by side with its own PyTorch backend
    if "st-onnx" in rows or "st-onnx-int8" in rows:
        wanted = [n for n in ("st-onnx", "st-onnx-int8") if n in rows]
        if not peer_python:
            results_rows += [{"name": n, "status": "not run", "error": "needs --peer-python (a Python with "
                              "sentence-transformers' ONNX backend: bash scripts/peer-venv.sh)"} for n in wanted]
        else:
            announce(f"[{len(results_rows) + 1}] sentence-transformers' ONNX backend ({peer_python})")
            results_rows += [r for r in measure_st_onnx(peer_python, base, texts[:n_speed], list(lengths),
                                                        threads, batch_size, out / "peer-onnx", repeats)
                             if r["name"] in wanted]
    eager = next((r for r in results_rows if r["name"] == "eager" and r["status"] == "ok"), None)
    for r in results_rows:
        if r["status"] != "ok":
            continue
        if "anchor_docs_per_second" in r:  # the peer: against its own PyTorch float32, timed beside it
            r["speedup_vs_eager"] = {k: v / r["anchor_docs_per_second"][k] for k, v in r["docs_per_second"].items()}
        elif eager:
            r["speedup_vs_eager"] = {k: v / eager["docs_per_second"][k] for k, v in r["docs_per_second"].items()}
        if eager and r.get("accuracy") is not None:
            r["accuracy_change_points"] = 100 * (r["accuracy"] - eager["accuracy"])
    env = environment()
    results = {"benchmark": "speed", "model": str(folder), "data": spec.path, "n_speed": n_speed,
               "n_accuracy": len(texts), "lengths": list(lengths), "threads": threads, "batch_size": batch_size,
               "export": export, "rows": results_rows, "hardware": env["hardware"], "versions": env["versions"],
               "repeats": repeats, "command": _command(out, model, peer_python, data=data, max_train=max_train,
                                                       max_test=n_accuracy, max_length=max_length, epochs=epochs)}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    write_markdown(results, out)
    _plot(results, out)
    return results


def _command(out: Path, model: str | None, peer_python: str | None, **given) -> str:
    """The command line that reproduces this run: every option that differs from the CLI's default."""
    defaults = {"data": None, "max_train": 2000, "max_test": 2000, "max_length": 256, "epochs": 1}
    if model:  # a given model: the training options played no part
        given = {k: v for k, v in given.items() if k in ("data", "max_test")}
    parts = [f"transferlab bench speed --out {out}"] + ([f"--model {model}"] if model else [])
    parts += ["--peer-python PEER_PYTHON"] if peer_python else []
    parts += [f"--{k.replace('_', '-')} {v}" for k, v in given.items() if v != defaults[k]]
    return " ".join(parts)


def write_markdown(results: dict, out: Path) -> None:
    from .report import hardware_line

    lengths = [str(x) for x in results["lengths"]]
    lines = [f"# Inference speed on the CPU: {results['model']}", "",
             f"Docs/s over {results['n_speed']} IMDB seed-protocol test reviews per length ({results['threads']} "
             f"threads, batches of {results['batch_size']} sorted by length), every runtime side by side: batch by "
             f"batch in turn in one process, each batch's fastest of {results.get('repeats', 1)} passes; ratios "
             "against eager from that process (sentence-transformers' rows: against its own PyTorch float32 backend, "
             f"timed beside them in the peer's process). Accuracy on {results['n_accuracy']} test reviews at the "
             "model's own length and peak memory from a fresh process per row.", "",
             "| row | " + " | ".join(f"{x} tokens docs/s (× eager)" for x in lengths)
             + " | peak MiB | accuracy (change) |", "|---|" + "---|" * (len(lengths) + 2)]
    for r in results["rows"]:
        if r["status"] != "ok":
            lines.append(f"| {r['name']} | {r['status']}: {r.get('error', '')} |" + " |" * (len(lengths) + 1))
            continue
        of = "× its PyTorch" if "anchor_docs_per_second" in r else "×"
        cells = [f"{r['docs_per_second'][x]:.1f} ({r['speedup_vs_eager'][x]:.2f}{of})" if "speedup_vs_eager" in r
                 else f"{r['docs_per_second'][x]:.1f}" for x in lengths]
        acc = (f"{100 * r['accuracy']:.2f}" + (f" ({r['accuracy_change_points']:+.2f})"
                                               if "accuracy_change_points" in r else "")
               if r.get("accuracy") is not None else "n/a (not this model's head)")
        lines.append(f"| {r['name']} | " + " | ".join(cells) + f" | {r['peak_mb']} | {acc} |")
    if results.get("export"):
        check = results["export"]["check"]
        lines += ["", f"Export check ({check['rows']} rows of {check['data']}): float32 graph largest probability "
                  f"difference {check['fp32']['max_abs_proba_diff']:.1e}"
                  + (f"; int8 accuracy {check['int8']['drop_points']:+.2f} points below eager"
                     if "int8" in check else "")
                  + (f"; OpenVINO ({results['export'].get('openvino_precision')}) accuracy "
                     f"{check['openvino']['drop_points']:+.2f} points below eager"
                     if "drop_points" in check.get("openvino", {}) else "")
                  + f". Optimisation: {results['export']['optimisation']}."]
    lines += ["", f"Hardware: {hardware_line(results['hardware'])}.", f"Command: `{results['command']}`."]
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    ok = [r for r in results["rows"] if r["status"] == "ok"]
    if not ok:
        return
    lengths = [str(x) for x in results["lengths"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(ok)
    for i, r in enumerate(ok):
        ax.bar(np.arange(len(lengths)) + i * width, [r["docs_per_second"][x] for x in lengths], width, label=r["name"])
    ax.set_xticks(np.arange(len(lengths)) + 0.4 - width / 2, [f"{x} tokens" for x in lengths])
    ax.set_ylabel("documents / second")
    ax.set_title(f"CPU inference, {results['threads']} threads")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "speed.png", dpi=120)
    plt.close(fig)
