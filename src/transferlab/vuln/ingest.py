"""Run a connector into the store, batch by batch, resuming from the source's checkpoint."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from .sources.base import Connector, SourceError
from .store import Store


@dataclass
class IngestReport:
    source: str
    read: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    filtered: int = 0
    skipped: int = 0
    pages_unchanged: int = 0
    batches: int = 0
    seconds: float = 0.0
    resumed: bool = False
    error: str | None = None
    skip_examples: list[str] = field(default_factory=list)

    @property
    def records_per_second(self) -> float:
        return self.read / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "records_per_second": round(self.records_per_second, 1)}

    def summary(self) -> str:
        text = (f"{self.source}: {self.read} records read ({self.new} new, {self.updated} updated, "
                f"{self.unchanged} already stored), {self.filtered} items outside the filter, "
                f"{self.skipped} skipped, in {self.seconds:.1f} s ({self.records_per_second:.0f} records/s)")
        if self.pages_unchanged:
            text += f"; {self.pages_unchanged} pages unchanged since the last run"
        if self.resumed:
            text += "; resumed from the last checkpoint"
        return text


def ingest(connector: Connector, store: Store, progress: bool = True, restart: bool = False) -> IngestReport:
    """Read everything the connector has after its checkpoint.  A :class:`SourceError` ends the run *after*
    everything before it is committed; the report carries the error and the CLI exits non-zero."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    key, legacy_keys = connector.key, connector.legacy_keys  # resolving every path once, not per batch
    if restart:
        for k in [key, *legacy_keys]:
            store.reset_checkpoint(k)
    checkpoint = store.checkpoint(key)
    for k in legacy_keys:  # written by an earlier release: honoured, then kept under the new key
        checkpoint = checkpoint if checkpoint is not None else store.checkpoint(k)
    report = IngestReport(source=connector.describe(), resumed=checkpoint is not None)
    start = time.perf_counter()
    columns = (SpinnerColumn(), TextColumn("[bold]{task.description}"), TextColumn("{task.completed} records"),
               TextColumn("{task.fields[skipped]} skipped"), TimeElapsedColumn())
    with Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task(f"ingesting {connector.name}", total=None, skipped=0)
        try:
            for batch in connector.batches(checkpoint):
                written = store.write_batch(key, batch, legacy_keys=legacy_keys)
                report.batches += 1
                report.read += len(batch.records)
                report.new += written.new
                report.updated += written.updated
                report.unchanged += written.unchanged
                report.filtered += batch.filtered
                report.pages_unchanged += batch.unchanged
                skipped = batch.skips + written.rejected
                report.skipped += len(skipped)
                report.skip_examples += [f"{s.location}: {s.reason}" for s in skipped][:5 - len(report.skip_examples)]
                bar.update(task, completed=report.read, skipped=report.skipped)
        except SourceError as err:
            report.error = str(err)
    report.seconds = time.perf_counter() - start
    return report
