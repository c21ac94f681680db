"""What every connector shares: batches with a checkpoint, counted skips, and errors that keep the checkpoint.

A connector turns a source into :class:`Batch` es.  Each batch carries its records, what it had to skip (with
where and why), and the checkpoint *after* it.  The ingester writes a batch's records, skips and checkpoint in
one transaction, so a kill between batches loses nothing and a rerun resumes at the last committed checkpoint;
records are upserted by identity, so reading the same hour or page twice duplicates nothing.
"""

from __future__ import annotations

import bz2
import gzip
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from transferlab.errors import TransferLabError

from ..records import Record


class SourceError(TransferLabError):
    """A source cannot be read any further (missing path, refused credentials, a server that keeps failing).

    Everything committed before it is kept, checkpoint included; rerunning continues from there.
    """


@dataclass
class Skip:
    """Input that could not become a record: counted, stored and reported, never silently dropped."""

    location: str
    reason: str


@dataclass
class Batch:
    records: list[Record] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    checkpoint: dict | None = None
    filtered: int = 0
    """Items read but outside what was asked for (another repository, an event type we do not keep)."""
    unchanged: int = 0
    """Pages a server said had not changed since the last run (HTTP 304)."""


class Connector:
    """Base class.  ``key`` names the checkpoint (one per source and target); ``batches`` does the reading."""

    name: str = "connector"

    @property
    def key(self) -> str:
        raise NotImplementedError

    def batches(self, checkpoint: dict | None) -> Iterator[Batch]:
        raise NotImplementedError

    def describe(self) -> str:
        return self.key


class FileConnector(Connector):
    """Archive files read in name order, unit by unit (a line, a message); the checkpoint is the units done per
    file.  The newest unit is handled only once the next one starts or the file ends cleanly, so a file cut short
    mid-download (truncated gzip) is resumed at its first incomplete unit when it is complete."""

    suffixes: tuple[str, ...] = ()
    unit = "unit"
    accepts_urls = False
    hint = "give archive files or a folder holding them"

    def __init__(self, paths, batch_size: int):
        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        self.paths = [str(p) for p in paths]
        self.batch_size = batch_size

    @property
    def key(self) -> str:
        return f"{self.name}:" + ",".join(sorted(self.paths))

    def files(self) -> list[str]:
        found: list[str] = []
        for p in self.paths:
            path = Path(p)
            if self.accepts_urls and p.startswith(("http://", "https://")):
                found.append(p)
            elif path.is_dir():
                found += sorted(str(f) for f in path.rglob("*") if f.is_file() and f.name.endswith(self.suffixes))
            elif path.is_file():
                found.append(str(path))
            else:
                raise SourceError("no such file or folder", where=p, hint=self.hint)
        if not found:
            raise SourceError(f"no {self.name} files ({', '.join(self.suffixes)}) here", where=", ".join(self.paths))
        return found

    def _open(self, name: str):
        if name.endswith(".gz"):
            return gzip.open(name, "rb")
        if name.endswith(".bz2"):
            return bz2.open(name, "rb")
        return open(name, "rb")

    def _units(self, stream) -> Iterator:
        raise NotImplementedError

    def _read_unit(self, name: str, number: int, unit, batch: Batch) -> None:
        raise NotImplementedError

    def batches(self, checkpoint: dict | None) -> Iterator[Batch]:
        state = dict((checkpoint or {}).get("files", {}))
        for name in self.files():
            done = state.get(name, {})
            if not done.get("complete"):
                yield from self._read_file(name, state, done.get("done", 0))

    def _read_file(self, name: str, state: dict, start: int) -> Iterator[Batch]:
        batch, read, pending = Batch(), start, None

        def cut(complete: bool) -> Batch:
            nonlocal batch
            state[name] = {"done": read, "complete": complete}
            out, batch = batch, Batch()
            out.checkpoint = {"files": dict(state)}
            return out

        try:
            with self._open(name) as stream:
                for number, unit in enumerate(self._units(stream), start=1):
                    if pending is not None:
                        self._read_unit(name, *pending, batch)
                        read = pending[0]
                        if len(batch.records) >= self.batch_size:
                            yield cut(complete=False)
                    pending = (number, unit) if number > start else None
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as err:
            batch.skips.append(Skip(f"{name}: {self.unit} {read + 1}", f"the file breaks here ({type(err).__name__}: "
                                    f"{err}); {self.unit}s from {read + 1} on not read yet: rerun once it is complete"))
            yield cut(complete=False)
            return
        if pending is not None:
            self._read_unit(name, *pending, batch)
            read = pending[0]
        yield cut(complete=True)
