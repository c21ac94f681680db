"""Server-side micro-batching: concurrent requests to one model are merged into one forward pass.

Why written here: the well-kept serving engines that batch (Ray Serve's ``@serve.batch``, Triton, TorchServe) each
bring a server of their own; inside one FastAPI process the whole mechanism is an asyncio queue and one worker
task, short enough to read in one screen.  The model runs in one dedicated thread (PyTorch already uses every core
for one batch; two batches at once would only fight over them), so the event loop keeps accepting requests while
a batch runs, and those requests form the next batch.

Bounded: at most ``max_queue`` texts wait; a request that would exceed it is refused at once (:class:`QueueFull`,
which the API answers with 503 and Retry-After) rather than queued into a timeout.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence


class QueueFull(Exception):
    """More texts are waiting than the queue holds."""


@dataclass
class BatchStats:
    batches: int = 0
    texts: int = 0
    requests: int = 0
    sizes: list[int] = field(default_factory=list)  # texts per forward pass, the most recent 1,000

    def add(self, n_texts: int, n_requests: int) -> None:
        self.batches += 1
        self.texts += n_texts
        self.requests += n_requests
        self.sizes = (self.sizes + [n_texts])[-1000:]


class MicroBatcher:
    """Collects the texts of concurrent :meth:`submit` calls into batches of up to ``max_batch`` texts (waiting at
    most ``max_wait_ms`` after the first for more to arrive) and runs ``fn(texts) -> list`` once per batch.

    A request is never split: one larger than ``max_batch`` runs as its own batch (the API caps request size
    separately).  ``max_wait_ms=0`` and ``max_batch=1`` give batch-of-one, the baseline the load benchmark
    compares against."""

    def __init__(self, fn: Callable[[list], Sequence], *, max_batch: int = 64, max_wait_ms: float = 5.0,
                 max_queue: int = 1024, name: str = "model", on_batch: Callable[[int, int, float], None] | None = None):
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and max_wait_ms >= 0")
        self.fn, self.name = fn, name
        self.max_batch, self.max_wait, self.max_queue = max_batch, max_wait_ms / 1000.0, max_queue
        self.on_batch = on_batch
        self.stats = BatchStats()
        self._queue: asyncio.Queue | None = None
        self._waiting = 0  # texts queued and not yet taken into a batch
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batch-{name}")

    @property
    def depth(self) -> int:
        """Texts waiting for a batch."""
        return self._waiting

    def start(self) -> None:
        if self._task is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def submit(self, items: list) -> list:
        """The results for ``items``, in order, once their batch has run."""
        if not items:
            return []
        self.start()
        if self._waiting + len(items) > self.max_queue:
            raise QueueFull(f"{self._waiting} texts are waiting for {self.name}; the queue holds {self.max_queue}")
        future = asyncio.get_running_loop().create_future()
        self._waiting += len(items)
        self._queue.put_nowait((items, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            batch, size = [first], len(first[0])
            deadline = loop.time() + self.max_wait
            while size < self.max_batch:
                timeout = deadline - loop.time()
                try:
                    nxt = self._queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(self._queue.get(),
                                                                                               timeout)
                except (asyncio.QueueEmpty, asyncio.TimeoutError):
                    break
                if size + len(nxt[0]) > self.max_batch:
                    # it starts the next batch: put it back in front by running it right after this one
                    await self._flush(batch, size, loop)
                    batch, size = [nxt], len(nxt[0])
                    deadline = loop.time() + self.max_wait
                    continue
                batch.append(nxt)
                size += len(nxt[0])
            await self._flush(batch, size, loop)

    async def _flush(self, batch: list, size: int, loop) -> None:
        texts = [t for items, _ in batch for t in items]
        self._waiting -= size
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._pool, self.fn, texts)
            if len(results) != len(texts):
                raise RuntimeError(f"{self.name} returned {len(results)} results for {len(texts)} texts")
        except Exception as exc:  # noqa: BLE001 - every request of the batch gets the error, the worker goes on
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.stats.add(size, len(batch))
        if self.on_batch:
            self.on_batch(size, len(batch), time.perf_counter() - started)
        at = 0
        for items, future in batch:
            if not future.done():  # a client that went away leaves a cancelled future
                future.set_result(list(results[at:at + len(items)]))
            at += len(items)
