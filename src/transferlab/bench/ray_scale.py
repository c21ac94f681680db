"""``transferlab bench ray --model DIR``: records/s of ``predict --engine ray`` with 1 and 2 workers against the
one-process path, on the same model, the same input files and the same cores, in one run.

The inputs are ``n_records`` IMDB seed-protocol test reviews (a fixed stratified draw) written as ``n_files`` JSONL
files in ``OUT/inputs``.  Rows:

- ``one-process``: the model loaded once in this process, every file scored in turn with ``score_file`` (what each
  Ray worker runs on its files), with all the cores' threads;
- ``ray-N``: ``predict_files`` with N Ray workers (actors), each loading the model once with ``cores // N``
  threads and scoring whole files.

Every row's time includes loading the model (a Ray actor's start-up is part of what Ray costs); starting the local
Ray instance itself is timed apart (``ray_start_seconds``), once per run.  Each Ray row's outputs are compared with
the one-process outputs, file by file and record by record (the same label; scores within ``tolerance``: two
workers run one thread each, so their float sums may differ in the last digits), and the row is marked failed if
they differ.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

DATA = dict(path="../shared/data/imdb/movie_reviews.csv.bz2", text_col="review", label_col="sentiment", split="seed")
ROWS = ("one-process", "ray-1", "ray-2")


def write_inputs(texts: list[str], folder: Path, n_files: int) -> list[Path]:
    """``texts`` split into ``n_files`` JSONL files of (nearly) equal size, ``{"id": i, "text": ...}`` per line."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.jsonl"):
        stale.unlink()
    paths = []
    for f in range(n_files):
        path = folder / f"part-{f:03d}.jsonl"
        with open(path, "w", encoding="utf-8") as out:
            for i in range(f, len(texts), n_files):
                out.write(json.dumps({"id": i, "text": texts[i]}, ensure_ascii=False) + "\n")
        paths.append(path)
    return paths


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def compare(reference: Path, other: Path, tolerance: float) -> dict:
    """Record-by-record agreement of two output folders (the same file names): counts and the largest score
    difference."""
    files = sorted(p.name for p in reference.glob("*.jsonl"))
    n = same_label = 0
    missing, largest = [], 0.0
    for name in files:
        if not (other / name).is_file():
            missing.append(name)
            continue
        a, b = _read(reference / name), _read(other / name)
        if [r["id"] for r in a] != [r["id"] for r in b]:
            missing.append(name)
            continue
        for x, y in zip(a, b):
            n += 1
            same_label += x["label"] == y["label"]
            largest = max(largest, max(abs(x["scores"][k] - y["scores"][k]) for k in x["scores"]))
    return {"records": n, "same_label": same_label, "largest_score_difference": largest,
            "files_missing_or_different": missing,
            "equal": not missing and n > 0 and same_label == n and largest <= tolerance}


def run(out: str | Path, *, model: str | Path, data: str | None = None, text_col: str | None = None,
        label_col: str | None = None, split: str | None = None, n_records: int = 2000, n_files: int = 8,
        rows: list[str] | None = None, runtime: str = "auto", batch_size: int = 64, tolerance: float = 1e-4,
        announce: Callable[[str], None] = print) -> dict:
    import ray
    import torch

    from ..data.loading import DataSpec, load_parts, subsample
    from ..errors import ConfigError
    from ..models.base import environment
    from ..models.classifier import TextClassifier
    from ..runtime.onnx import cpu_threads
    from ..scale.ray_predict import output_for, predict_files, score_file

    rows = list(rows or ROWS)
    bad = [r for r in rows if r != "one-process" and not (r.startswith("ray-") and r[4:].isdigit() and int(r[4:]))]
    if bad:
        raise ConfigError(f"unknown ray bench row(s) {bad}", hint="one-process, ray-1, ray-2 (ray-N: N workers)")
    if "one-process" not in rows:
        rows.insert(0, "one-process")  # the reference every Ray row is checked against
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = DataSpec(path=data or DATA["path"], text_col=text_col or DATA["text_col"],
                    label_col=label_col or DATA["label_col"], split=split or DATA["split"])
    parts, _ = load_parts(spec, seed=13)
    test = subsample(parts["test"], n_records, seed=13)
    inputs = write_inputs(list(test.texts), out / "inputs", n_files)
    threads = cpu_threads()
    announce(f"{len(test)} records in {len(inputs)} files; {threads} cores")

    results_rows, ray_start = [], None
    reference = out / "one-process"
    for name in rows:
        announce(f"[{len(results_rows) + 1}/{len(rows)}] {name}")
        target = out / name
        target.mkdir(exist_ok=True)
        for stale in target.glob("*.jsonl"):
            stale.unlink()
        if name == "one-process":
            torch.set_num_threads(threads)
            started = time.perf_counter()
            clf = TextClassifier.load(model, device="cpu", runtime=runtime)
            records = sum(score_file(clf, path, output_for(path, target), "text", None, batch_size)
                          for path in inputs)
            seconds = time.perf_counter() - started
            del clf
            row = {"name": name, "status": "ok", "workers": 0, "threads_per_worker": threads, "records": records,
                   "seconds": round(seconds, 2), "records_per_second": round(records / seconds, 1)}
        else:
            workers = int(name[4:])
            if not ray.is_initialized():
                t0 = time.perf_counter()
                ray.init(num_cpus=threads, include_dashboard=False, log_to_driver=False, configure_logging=False)
                ray_start = time.perf_counter() - t0
            report = predict_files(model, out / "inputs", target, workers=workers, runtime=runtime,
                                   batch_size=batch_size, restart=True, announce=announce)
            check = compare(reference, target, tolerance)
            row = {"name": name, "status": "ok" if check["equal"] and not report["failed"] else "failed",
                   "workers": workers, "threads_per_worker": max(1, threads // workers),
                   "records": report["records"], "seconds": report["seconds"],
                   "records_per_second": report["records_per_second"], "failed_files": report["failed"],
                   "agreement": check}
        results_rows.append(row)
        announce(f"    {row['records']} records in {row['seconds']} s: {row['records_per_second']} records/s"
                 + ("" if row["status"] == "ok" else " -- FAILED (see agreement)"))
    base = results_rows[0]["records_per_second"]
    for r in results_rows:
        r["ratio_vs_one_process"] = round(r["records_per_second"] / base, 2) if r["records_per_second"] else None
    env = environment()
    results = {"benchmark": "ray", "model": str(model), "runtime": runtime, "data": spec.path,
               "n_records": len(test), "n_files": len(inputs), "cores": threads, "batch_size": batch_size,
               "ray_start_seconds": None if ray_start is None else round(ray_start, 2), "rows": results_rows,
               "hardware": env["hardware"], "versions": env["versions"],
               "command": f"transferlab bench ray --model {model} --out {out}"}
    if ray_start is not None:  # the instance this run started (one that was running before is left running)
        ray.shutdown()
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    write_markdown(results, out)
    return results


def write_markdown(results: dict, out: Path) -> None:
    from .report import hardware_line

    lines = [f"# Scoring files on Ray: {results['model']} (runtime {results['runtime']})", "",
             f"{results['n_records']} IMDB seed-protocol test reviews in {results['n_files']} JSONL files, "
             f"{results['cores']} cores, batches of {results['batch_size']}. Times include loading the model; "
             f"starting the local Ray instance took {results['ray_start_seconds']} s (not counted).", "",
             "| row | workers x threads | records/s (x one process) | seconds | outputs equal to one process |",
             "|---|---|---|---|---|"]
    for r in results["rows"]:
        check = r.get("agreement")
        agree = ("(reference)" if check is None else
                 f"{'yes' if check['equal'] else 'NO'}: {check['same_label']}/{check['records']} labels, "
                 f"largest score difference {check['largest_score_difference']:.1e}")
        workers = "1 (this process)" if r["workers"] == 0 else str(r["workers"])
        lines.append(f"| {r['name']} | {workers} x {r['threads_per_worker']} | {r['records_per_second']} "
                     f"({r['ratio_vs_one_process']:.2f}x) | {r['seconds']} | {agree} |")
    lines += ["", f"Hardware: {hardware_line(results['hardware'])}.", f"Command: `{results['command']}`."]
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
