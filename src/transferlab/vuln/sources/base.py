"""What every connector shares: batches with a checkpoint, counted skips, and errors that keep the checkpoint.

A connector turns a source into :class:`Batch` es.  Each batch carries its records, what it had to skip (with
where and why), and the checkpoint *after* it.  The ingester writes a batch's records, skips and checkpoint in
one transaction, so a kill between batches loses nothing and a rerun resumes at the last committed checkpoint;
records are upserted by identity, so reading the same hour or page twice duplicates nothing.

File checkpoints are keyed by a file's resolved path and remember its fingerprint (size, modification time and a
hash of its first and last 64 KiB): a file that grew is continued where it stopped, a file that changed otherwise
(a replaced hour) is read again from its start, and a file that is unchanged and complete is not opened.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from transferlab.errors import TransferLabError

from ..records import Record
from .fields import BadItem


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
    resolved: list[str] = field(default_factory=list)
    """Locations of earlier skips that this batch's reading made good (a truncated file read to its end)."""


def each_item(things: list, where: str, what: str, make, skips: list[Skip]) -> list[Record]:
    """``make(thing)`` (a record or a list of them) for each thing of an API page; one without what it needs, or
    that the code fails on, is a skip at ``where item N`` and the others are kept.  A :class:`SourceError` (the
    server failing while comments are fetched) still ends the run: skipping the item would move the checkpoint
    past it for good."""
    out = []
    for n, thing in enumerate(things):
        try:
            made = make(thing)
        except BadItem as err:
            skips.append(Skip(f"{where} item {n}", f"not a {what}: {err}"))
            continue
        except SourceError:
            raise
        except Exception as err:  # noqa: BLE001 - text from strangers takes shapes no accessor foresees, and one
            # item the code fails on must cost that item, not the page (FileConnector._handle does the same per unit)
            skips.append(Skip(f"{where} item {n}", f"cannot be read: {type(err).__name__}: {str(err)[:200]}"))
            continue
        for record in made if isinstance(made, list) else [made]:
            record.origin = record.origin or f"{where} item {n}"
            out.append(record)
    return out


class Connector:
    """Base class.  ``key`` names the checkpoint (one per source and target); ``batches`` does the reading."""

    name: str = "connector"

    @property
    def key(self) -> str:
        raise NotImplementedError

    @property
    def legacy_keys(self) -> list[str]:
        """Keys an earlier release used for this checkpoint: read when ``key`` has none yet."""
        return []

    def batches(self, checkpoint: dict | None) -> Iterator[Batch]:
        raise NotImplementedError

    def describe(self) -> str:
        return self.key


DEFAULT_MAX_RECORD_BYTES = 10 * 1000 * 1000
_CHUNK = 1 << 16  # how much of an over-long line is held at a time while it is passed over
_EDGE = 1 << 16  # bytes hashed at each end of a file for its fingerprint


class _Oversized(bytes):
    """Stands for a line over the size cap: empty, so a connector that reads it as a line sees no text."""


class _BoundedLines:
    """A binary stream's lines, none longer than ``cap`` bytes.  Iterating a file object reads each line whole,
    however long (one 200 kB gzip line can be gigabytes), so lines are read with ``readline(cap + 1)`` and the
    rest of a longer one is read and dropped in chunks; it is yielded as an empty :class:`_Oversized` and noted."""

    def __init__(self, stream, cap: int):
        self.stream, self.cap, self.number = stream, cap, 0
        self.oversized: list[tuple[int, int]] = []  # (line number, bytes), taken by the reader as it goes

    def __iter__(self):
        readline = self.stream.readline
        while line := readline(self.cap + 1):
            self.number += 1
            if len(line) <= self.cap or line.endswith(b"\n"):
                yield line
                continue
            size = len(line)
            while line and not line.endswith(b"\n"):
                line = readline(_CHUNK)
                size += len(line)
            self.oversized.append((self.number, size))
            yield _Oversized()

    def take(self) -> list[tuple[int, int]]:
        taken, self.oversized = self.oversized, []
        return taken


def fingerprint(path: str, size: int | None = None) -> dict:
    """Size, modification time and SHA-256 of the first and last 64 KiB of ``path`` (of its first ``size``
    bytes when given: what the file held then, if it only grew since).  Hashing the ends rather than the whole
    keeps an unchanged hour cheap to recognise; together with the size and time a replaced file is noticed."""
    stat = os.stat(path)
    size = stat.st_size if size is None else size
    with open(path, "rb") as fh:
        head = hashlib.sha256(fh.read(min(size, _EDGE))).hexdigest()
        fh.seek(max(size - _EDGE, 0))
        tail = hashlib.sha256(fh.read(min(size, _EDGE))).hexdigest()
    return {"size": size, "mtime_ns": stat.st_mtime_ns, "head": head, "tail": tail}


def _only_grew(path: str, old: dict, new: dict) -> bool:
    """Whether ``path`` still starts with what it held when ``old`` was taken (a download that went on, an
    archive that had messages appended)."""
    if new["size"] <= old.get("size", -1):
        return False
    then = fingerprint(path, old["size"])
    return (then["head"], then["tail"]) == (old.get("head"), old.get("tail"))


class FileConnector(Connector):
    """Archive files read in name order, unit by unit (a line, a message); the checkpoint is the units done per
    file.  The newest unit is handled only once the next one starts or the file ends cleanly, so a file cut short
    mid-download (truncated gzip) is resumed at its first incomplete unit when it is complete.

    No unit stops the run: a line over ``max_record_bytes`` is passed over without being held, and a unit the
    connector's code fails on is a skip at its place, like one it rejects itself."""

    suffixes: tuple[str, ...] = ()
    unit = "unit"
    accepts_urls = False
    hint = "give archive files or a folder holding them"
    max_record_bytes = DEFAULT_MAX_RECORD_BYTES

    def __init__(self, paths, batch_size: int, max_record_bytes: int | None = None):
        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        self.paths = [str(p) for p in paths]
        self.batch_size = batch_size
        if max_record_bytes is not None:
            self.max_record_bytes = max_record_bytes

    def _is_url(self, p: str) -> bool:
        return self.accepts_urls and p.startswith(("http://", "https://"))

    def _file_key(self, p: str) -> str:
        """A file's checkpoint key: its resolved path, however it was spelled (a URL as it is)."""
        return p if self._is_url(p) else str(Path(p).resolve())

    @property
    def key(self) -> str:
        return f"{self.name}:" + ",".join(sorted(self._file_key(p) for p in self.paths))

    @property
    def legacy_keys(self) -> list[str]:
        old = f"{self.name}:" + ",".join(sorted(self.paths))  # older releases keyed by the paths as typed
        return [old] if old != self.key else []

    def files(self) -> list[str]:
        found: list[str] = []
        for p in self.paths:
            path = Path(p)
            if self._is_url(p):
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

    def _where(self, name: str, number: int) -> str:
        return f"{name}:{number}" if self.unit == "line" else f"{name}: {self.unit} {number}"

    def batches(self, checkpoint: dict | None) -> Iterator[Batch]:
        checkpoint = checkpoint or {}
        state = {"files": dict(checkpoint.get("files", {})), "seen": dict(checkpoint.get("seen", {})),
                 "broken": {k: list(v) for k, v in checkpoint.get("broken", {}).items()}}
        for name in self.files():
            key = self._file_key(name)
            if key not in state["files"] and name in state["files"]:  # an older checkpoint: the path as typed
                state["files"][key] = state["files"].pop(name)
                if not state["files"][key].get("complete"):
                    state["broken"].setdefault(key, []).append(f"{name}: {self.unit} "
                                                               f"{state['files'][key].get('done', 0) + 1}")
            done = state["files"].get(key, {})
            start, complete = done.get("done", 0), done.get("complete", False)
            try:
                now = None if self._is_url(name) else fingerprint(name)
            except OSError:  # unreadable now: opening it below turns that into a skip
                now = None
            before = state["seen"].get(key)
            if now is not None and before is not None and before != now:
                if _only_grew(name, before, now):
                    complete = False
                else:  # replaced or rewritten: read again from the start (upserts make that safe)
                    start, complete = 0, False
            if now is not None:
                state["seen"][key] = now  # taken before reading: a change while reading is seen next time
            if not complete:
                yield from self._read_file(name, key, state, start)

    def _read_file(self, name: str, key: str, state: dict, start: int) -> Iterator[Batch]:
        batch, read, pending = Batch(), start, None

        def cut(complete: bool) -> Batch:
            nonlocal batch
            state["files"][key] = {"done": read, "complete": complete}
            if complete:
                batch.resolved += state["broken"].pop(key, [])
            out, batch = batch, Batch()
            out.checkpoint = {"files": dict(state["files"]), "seen": dict(state["seen"]),
                              "broken": {k: list(v) for k, v in state["broken"].items()}}
            return out

        try:
            with self._open(name) as stream:
                lines = _BoundedLines(stream, self.max_record_bytes)
                for number, unit in enumerate(self._units(lines), start=1):
                    if pending is not None:
                        self._handle(name, *pending, batch)
                        read = pending[0]
                        if len(batch.records) >= self.batch_size:
                            yield cut(complete=False)
                    noted = lines.take()  # over-long lines met since the last unit: they belong to this one
                    pending = (number, unit, noted) if number > start else None
                trailing = lines.take()
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as err:
            where = f"{name}: {self.unit} {read + 1}"
            batch.skips.append(Skip(where, f"the file breaks here ({type(err).__name__}: {err}); {self.unit}s "
                                    f"from {read + 1} on not read yet: rerun once it is complete"))
            if where not in state["broken"].setdefault(key, []):
                state["broken"][key].append(where)
            yield cut(complete=False)
            return
        if pending is not None:
            self._handle(name, *pending, batch)
            read = pending[0]
        self._note_oversized(name, trailing, batch)
        yield cut(complete=True)

    def _note_oversized(self, name: str, oversized: list[tuple[int, int]], batch: Batch) -> None:
        batch.skips += [Skip(f"{name}:{line}", f"a line of {size:,} bytes, over the {self.max_record_bytes:,}-byte "
                             "limit for one record (--max-record-bytes): passed over unread")
                        for line, size in oversized]

    def _handle(self, name: str, number: int, unit, oversized: list[tuple[int, int]], batch: Batch) -> None:
        self._note_oversized(name, oversized, batch)
        if isinstance(unit, _Oversized):
            return
        first = len(batch.records)
        try:
            self._read_unit(name, number, unit, batch)
        except Exception as err:  # noqa: BLE001 - text from strangers takes shapes no connector foresees; one
            # unit a connector's code fails on is that unit's skip, never the end of the run
            del batch.records[first:]
            batch.skips.append(Skip(self._where(name, number), f"cannot be read: {type(err).__name__}: {str(err)[:200]}"))
            return
        for record in batch.records[first:]:
            record.origin = record.origin or self._where(name, number)
