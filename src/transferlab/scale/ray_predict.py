"""``transferlab predict MODEL --input 'FOLDER or GLOB' --engine ray --out DIR``: score many JSONL files on Ray.

Ray Data maps over the input files with a pool of actors (``--workers``; each loads the model once, with
``cpus // workers`` threads); an actor reads one file (a bad line stops that file, named with its line number, as in
the one-process ``predict``), scores it in batches, and writes ``DIR/<name>.predictions.jsonl`` atomically (a
temporary file, then a rename), so a file's output exists only when it is complete.  A rerun skips the files whose
output exists (``--restart`` scores them again): runs resume per file.  Failed files are counted and reported with
their reason; the others are kept.  ``--ray-address`` joins a running cluster (``auto``, or ``ray://host:10001``);
without it a local Ray instance is started on this machine's cores.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable, Sequence

from ..errors import DataError

SUFFIX = ".predictions.jsonl"


def expand(specs, suffixes: tuple[str, ...], kind: str, hint: str) -> list[str]:
    """Folders (their files ending in ``suffixes``), globs or files; sorted, each once."""
    specs = [specs] if isinstance(specs, (str, Path)) else list(specs)
    found: set[str] = set()
    for one in map(str, specs):
        path = Path(one)
        if path.is_dir():
            found |= {str(p) for p in path.iterdir() if p.is_file() and p.name.endswith(suffixes)}
        elif any(ch in one for ch in "*?["):
            found |= {p for p in glob.glob(one, recursive=True) if Path(p).is_file()}
        elif path.is_file():
            found.add(one)
        else:
            raise DataError("no such file or folder", where=one, hint=hint)
    if not found:
        raise DataError(f"no {kind} here", where=", ".join(map(str, specs)), hint=hint)
    return sorted(found)


def input_files(spec: str | Path) -> list[Path]:
    """A folder (its ``*.jsonl`` and ``*.jsonl.gz``), a glob, or one file; sorted, each once."""
    return [Path(p) for p in expand(spec, (".jsonl", ".jsonl.gz"), "JSONL files",
                                    "a JSONL file, a folder of them, or a glob (*.jsonl, *.jsonl.gz)")]


def output_for(path: Path, out_dir: Path) -> Path:
    """The output file of one input: its name, plus a short hash of its full path so that two inputs of one name
    in different folders never share an output."""
    tag = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
    name = path.name[: -len(".gz")] if path.name.endswith(".gz") else path.name
    return out_dir / f"{Path(name).stem}.{tag}{SUFFIX}"


def _open(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def score_file(clf, path: Path, target: Path, text_field: str, pair_field: str | None, batch_size: int) -> int:
    """Score one JSONL file into ``target`` (written whole or not at all); returns the number of records."""
    from ..serving_io import iter_jsonl, scored

    tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
    n = 0
    try:
        with _open(path) as stream, open(tmp, "w", encoding="utf-8") as out:
            for chunk in iter_jsonl(stream, str(path), text_field, pair_field, batch_size):
                for row in scored(clf, chunk, text_field, pair_field):
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
                    n += 1
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return n


class FileScorer:
    """A Ray actor: one loaded model, one input file per call."""

    def __init__(self, model_dir: str, text_field: str, pair_field: str | None, batch_size: int, runtime: str,
                 threads: int, trust_remote_code: bool = False):
        import torch

        from ..models.classifier import TextClassifier

        os.environ["TRANSFERLAB_THREADS"] = str(threads)  # ONNX Runtime sessions take this share of the cores too
        torch.set_num_threads(threads)
        self.clf = TextClassifier.load(model_dir, device="cpu", runtime=runtime, trust_remote_code=trust_remote_code)
        self.args = (text_field, pair_field, batch_size)

    def __call__(self, row: dict) -> dict:
        started = time.perf_counter()
        try:
            n = score_file(self.clf, Path(row["path"]), Path(row["out"]), *self.args)
            return {**row, "status": "ok", "records": n, "seconds": time.perf_counter() - started, "error": ""}
        except Exception as exc:  # this file is counted as failed with its reason; the other files go on
            return {**row, "status": "failed", "records": 0, "seconds": time.perf_counter() - started,
                    "error": " ".join(f"{type(exc).__name__}: {exc}".split())}


def predict_files(model_dir: str | Path, inputs: str | Path, out_dir: str | Path, *, text_field: str = "text",
                  pair_field: str | None = None, workers: int = 1, ray_address: str | None = None,
                  runtime: str = "auto", batch_size: int = 256, restart: bool = False,
                  trust_remote_code: bool = False, announce: Callable[[str], None] = print) -> dict:
    """Score every input file on Ray; returns ``{"files": [...], "records", "seconds", "records_per_second",
    "failed", "skipped"}``."""
    import ray

    from ..models.classifier import TextClassifier
    from ..runtime.onnx import cpu_threads

    if workers < 1:
        raise DataError("--workers must be at least 1")
    TextClassifier.load(model_dir, device="cpu", runtime=runtime, trust_remote_code=trust_remote_code)  # fail early
    files = input_files(inputs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [{"path": str(f), "out": str(output_for(f, out_dir))} for f in files]
    todo = [j for j in jobs if restart or not Path(j["out"]).is_file()]
    skipped = len(jobs) - len(todo)
    if skipped:
        announce(f"{skipped} of {len(jobs)} file(s) already scored in {out_dir} (kept; --restart scores them again)")
    result = {"files": [], "records": 0, "seconds": 0.0, "records_per_second": None, "failed": 0,
              "skipped": skipped, "workers": workers}
    if not todo:
        return result
    local = ray_address is None
    threads = max(1, cpu_threads() // workers) if local else 1
    if not ray.is_initialized():
        ray.init(address=ray_address, num_cpus=cpu_threads() if local else None, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    announce(f"scoring {len(todo)} file(s) with {workers} Ray worker(s)"
             + (" on this machine" if local else f" on {ray_address}"))
    started = time.perf_counter()
    ds = ray.data.from_items(todo, override_num_blocks=len(todo))
    done = ds.map(FileScorer, fn_constructor_kwargs=dict(model_dir=str(model_dir), text_field=text_field,
                                                         pair_field=pair_field, batch_size=batch_size,
                                                         runtime=runtime, threads=threads,
                                                         trust_remote_code=trust_remote_code),
                  concurrency=workers, num_cpus=threads).take_all()
    seconds = time.perf_counter() - started
    done.sort(key=lambda r: r["path"])
    records = sum(r["records"] for r in done)
    result.update(files=done, records=records, seconds=round(seconds, 2),
                  records_per_second=round(records / seconds, 1) if seconds else None,
                  failed=sum(r["status"] != "ok" for r in done))
    return result
