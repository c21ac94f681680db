"""What a benchmark row costs: wall time and peak memory (process RSS on CPU, allocated memory on CUDA)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil
import torch


class PeakMemory:
    """Sample this process's resident memory in a thread while the block runs; on CUDA also track the device.

    ``peak_mb`` is the peak resident set size in MiB (it includes the interpreter and every loaded library, so
    compare rows of one run with each other); ``gpu_peak_mb`` is ``torch.cuda.max_memory_allocated``.
    """

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak_mb = 0.0
        self.gpu_peak_mb: float | None = None
        self._stop = threading.Event()
        self._proc = psutil.Process()

    def _sample(self) -> None:
        rss = self._proc.memory_info().rss / 2**20
        self.peak_mb = max(self.peak_mb, rss)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "PeakMemory":
        self._sample()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        if torch.cuda.is_available():
            self.gpu_peak_mb = torch.cuda.max_memory_allocated() / 2**20


class Stopwatch:
    def __enter__(self) -> "Stopwatch":
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start


def earlier_results(out: Path, results: dict, same: tuple[str, ...], field: str = "rows") -> list[dict]:
    """The ``field`` list (rows, runs) of an earlier ``results.json`` in ``out`` when it was measured on the same
    data and setting (every key in ``same`` equal), so a benchmark can run in parts (a CPU evening each) and keep the
    rest of its table; a run on other data or settings starts afresh, as does an unreadable file."""
    import json

    try:
        earlier = json.loads((Path(out) / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(earlier, dict) or not all(earlier.get(k) == results.get(k) for k in same):
        return []
    return list(earlier.get(field) or [])


def need_seeds(seeds) -> None:
    """A multi-seed suite refuses an empty seed list before any work."""
    if not seeds:
        from ..errors import ConfigError

        raise ConfigError("no seeds to run", hint="--seeds 1 or more")
