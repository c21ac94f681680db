"""``transferlab vuln backfill``: many GH Archive hours into the store, then every new record scored, on Ray.

Two Ray Data stages over a pool of workers (``--workers``):

1. **Ingest**, one hour file per task: the file is read, filtered to the repositories you name, and written to the
   store under its own checkpoint (the same code as ``vuln ingest``), so a rerun skips the hours already read and
   continues a broken one where it stopped.  Bad lines and a file that breaks off are counted skips (kept in the
   store's skips table, as ``vuln ingest`` keeps them); a file whose reading fails is counted and named; the other
   files are kept either way.
2. **Score**: the records this cascade version has not scored (of those repositories) are split into disjoint
   chunks, and each worker (the cascade loaded once) scores its chunks and writes their scores: no two workers write
   the same record.  A rerun scores only what is still unscored.

The store is the meeting point (PostgreSQL in practice; SQLite works on one machine, its writers taking turns).  A
database password belongs in the environment (``PGPASSWORD``), which local workers inherit; on a cluster give it to
the workers' environment, never in the URL.  ``--engine local`` runs the same two steps in this process.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Sequence

from ..errors import DataError

HOUR_SUFFIXES = (".json.gz", ".json", ".jsonl", ".jsonl.gz")


def hour_files(spec: str | Path | Sequence[str | Path]) -> list[str]:
    """Folders (their GH Archive hour files), globs or files; sorted, each once."""
    from .ray_predict import expand

    return expand(spec, HOUR_SUFFIXES, "GH Archive hour files",
                  "*.json.gz files (https://www.gharchive.org), a folder or a glob naming them")


def ingest_file(store, path: str, repos: list[str] | None) -> dict:
    """One hour into the store under its own checkpoint; a report row."""
    from ..vuln.ingest import ingest
    from ..vuln.sources.gharchive import GHArchiveConnector

    started = time.perf_counter()
    try:
        report = ingest(GHArchiveConnector([path], repos=repos), store, progress=False)
    except Exception as exc:  # this hour is counted as failed with its reason; the others go on
        return {"path": path, "status": "failed", "read": 0, "new": 0, "skipped": 0,
                "seconds": time.perf_counter() - started, "error": " ".join(f"{type(exc).__name__}: {exc}".split())}
    return {"path": path, "status": "failed" if report.error else "ok", "read": report.read, "new": report.new,
            "skipped": report.skipped, "seconds": time.perf_counter() - started, "error": report.error or ""}


def score_ids(store, cascade, ids: list[int]) -> int:
    rows = store.records_by_id(ids)
    return store.write_scores(cascade.version, cascade.score_records([rows[i] for i in ids if i in rows]))


class Ingester:
    """A Ray actor: one store connection, one hour file per call."""

    def __init__(self, db: str, repos: list[str] | None):
        from ..vuln.store import Store

        self.store, self.repos = Store.open(db, migrate=False), repos

    def __call__(self, row: dict) -> dict:
        return ingest_file(self.store, row["path"], self.repos)


class Scorer:
    """A Ray actor: the cascade loaded once, one chunk of record ids per call."""

    def __init__(self, db: str, cascade: str, runtime: str, threads: int):
        import torch

        from ..vuln.cascade import Cascade
        from ..vuln.store import Store

        os.environ["TRANSFERLAB_THREADS"] = str(threads)  # ONNX Runtime sessions take this share of the cores too
        torch.set_num_threads(threads)
        self.store, self.cascade = Store.open(db, migrate=False), Cascade.load(cascade, runtime=runtime)

    def __call__(self, row: dict) -> dict:
        ids = [int(i) for i in row["ids"]]
        return {"chunk": row["chunk"], "scored": score_ids(self.store, self.cascade, ids)}


def backfill(paths, db: str, cascade: str | Path, *, repos: list[str] | None = None, engine: str = "ray",
             workers: int = 1, ray_address: str | None = None, runtime: str = "auto", chunk: int = 256,
             announce: Callable[[str], None] = print) -> dict:
    """Ingest every hour, then score what is unscored; returns counts, seconds and records/s of each stage."""
    from ..runtime.onnx import cpu_threads
    from ..vuln.cascade import Cascade
    from ..vuln.store import Store

    if engine not in ("local", "ray"):
        raise DataError(f"unknown engine {engine!r}", hint="--engine local or --engine ray")
    if workers < 1:
        raise DataError("--workers must be at least 1")
    files = hour_files(paths)
    store = Store.open(db)  # migrated once, here, before any worker connects
    model = Cascade.load(cascade, runtime=runtime)  # refused here, before any work, if altered
    result = {"files": [], "engine": engine, "workers": workers if engine == "ray" else 1}
    started = time.perf_counter()
    if engine == "local":
        result["files"] = [ingest_file(store, f, repos) for f in files]
    else:
        import ray

        local = ray_address is None
        if not ray.is_initialized():
            ray.init(address=ray_address, num_cpus=cpu_threads() if local else None, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        announce(f"ingesting {len(files)} hour file(s) with {workers} Ray worker(s)")
        ds = ray.data.from_items([{"path": f} for f in files], override_num_blocks=len(files))
        result["files"] = sorted(ds.map(Ingester, fn_constructor_kwargs=dict(db=db, repos=repos),
                                        concurrency=workers, num_cpus=1).take_all(), key=lambda r: r["path"])
    ingest_s = time.perf_counter() - started
    read = sum(r["read"] for r in result["files"])
    pending = store.unscored_ids(model.version, repos)
    announce(f"ingested {read} record(s) from {len(files)} file(s) in {ingest_s:.1f}s; scoring {len(pending)}")
    started = time.perf_counter()
    chunks = [pending[i:i + chunk] for i in range(0, len(pending), chunk)]
    if not chunks:
        scored = 0
    elif engine == "local":
        scored = sum(score_ids(store, model, c) for c in chunks)
    else:
        threads = max(1, cpu_threads() // workers) if ray_address is None else 1
        ds = ray.data.from_items([{"chunk": i, "ids": c} for i, c in enumerate(chunks)],
                                 override_num_blocks=len(chunks))
        scored = sum(r["scored"] for r in ds.map(Scorer, fn_constructor_kwargs=dict(
            db=db, cascade=str(cascade), runtime=runtime, threads=threads), concurrency=workers,
            num_cpus=threads).take_all())
    score_s = time.perf_counter() - started
    result.update(read=read, new=sum(r["new"] for r in result["files"]),
                  skipped=sum(r["skipped"] for r in result["files"]),
                  failed=sum(r["status"] != "ok" for r in result["files"]), ingest_seconds=round(ingest_s, 2),
                  scored=scored, score_seconds=round(score_s, 2),
                  ingest_records_per_s=round(read / ingest_s, 1) if ingest_s else None,
                  score_records_per_s=round(scored / score_s, 1) if score_s else None,
                  end_to_end_records_per_s=round(scored / (ingest_s + score_s), 1) if scored else None,
                  cascade_version=model.version)
    return result
