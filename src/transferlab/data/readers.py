"""Read labelled text from CSV/TSV, JSON Lines or a Hugging Face dataset into :class:`Examples`.

Every problem a user can fix (a missing column, a row that does not parse, bytes that are not
UTF-8, an empty text) raises :class:`DataError` naming the file and line, unless the caller asked
to skip bad rows, in which case the row is recorded in the :class:`ReadReport`.
"""

from __future__ import annotations

import bz2
import csv
import difflib
import gzip
import json
import lzma
import re
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Sequence

from transferlab.data.records import Examples
from transferlab.errors import DataError

FORMATS = ("csv", "tsv", "jsonl", "hf")
_SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
_COMPRESSED = {".gz", ".bz2", ".xz"}
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?(:[\w.-]+)?$")
_SKIP_HINT = "fix or remove the row, or pass --skip-bad-rows to skip rows like this one"


@dataclass
class ReadReport:
    source: str
    rows_read: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    truncated: int = 0

    def summary(self) -> str:
        text = f"read {self.rows_read} rows from {self.source}"
        if not self.skipped:
            return text
        lines = [f"{text}; skipped {len(self.skipped)} (see below)"]
        lines += [f"  {where}: {reason}" for where, reason in self.skipped[:10]]
        if len(self.skipped) > 10:
            lines.append(f"  ... and {len(self.skipped) - 10} more")
        return "\n".join(lines)


def read_examples(
    source: str | Path,
    *,
    text_col: str,
    label_col: str | None = None,
    pair_col: str | None = None,
    label_sep: str | None = None,
    keep_cols: Sequence[str] = (),
    skip_bad_rows: bool = False,
    allow_empty_text: bool = False,
    fmt: str | None = None,
    hf_split: str | None = None,
) -> tuple[Examples, ReadReport]:
    """Read ``source`` (a file, a saved dataset directory or a hub name) into :class:`Examples`."""
    if fmt is not None and fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    path = Path(source)
    display = str(source)
    report = ReadReport(source=display)
    builder = _Builder(text_col, label_col, pair_col, label_sep, keep_cols, skip_bad_rows, allow_empty_text, report)

    if not path.exists():
        if fmt in (None, "hf") and _HUB_NAME.match(display) and not _data_suffix(path):
            _read_hub(display, builder, hf_split)
        else:
            raise DataError("file not found", where=display, hint="check the path (it is relative to the current directory)")
    elif path.is_dir() or fmt == "hf":
        _read_saved_dataset(path, display, builder, hf_split)
    else:
        fmt = fmt or _data_suffix(path)
        if fmt is None:
            raise DataError(
                f"cannot tell the format of {path.name!r} from its name",
                where=display,
                hint="name it .csv, .tsv or .jsonl (optionally .gz/.bz2), or pass the format explicitly",
            )
        with _open_binary(path) as stream:
            reader = _read_jsonl if fmt == "jsonl" else _read_delimited
            reader(stream, path.name, display, builder, delimiter="\t" if fmt == "tsv" else ",")
    return builder.build(display), report


def _data_suffix(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes.pop()
    return _SUFFIX_FORMATS.get(suffixes[-1]) if suffixes else None


def _open_binary(path: Path) -> BinaryIO:
    # Sniff the magic bytes rather than trust the suffix: a gzip file named .csv is common.
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rb")
    if magic.startswith(b"BZh"):
        return bz2.open(path, "rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.open(path, "rb")
    return open(path, "rb")


class _Lines:
    """Decodes a binary stream line by line, so a bad byte can be reported with its line number."""

    def __init__(self, stream: BinaryIO, display: str):
        self.stream, self.display = stream, display
        self.compressed = isinstance(stream, (gzip.GzipFile, bz2.BZ2File, lzma.LZMAFile))
        self.line = 0  # physical lines consumed so far
        self.offset = 0  # bytes consumed so far (of the decompressed data)

    def __iter__(self) -> Iterator[str]:
        for raw in self.stream:
            self.line += 1
            try:
                text = raw.decode("utf-8-sig" if self.line == 1 else "utf-8")
            except UnicodeDecodeError as e:
                bad = raw[e.start : e.start + 1].hex()
                raise DataError(
                    f"bytes that are not UTF-8 (0x{bad} at byte {self.offset + e.start}"
                    f"{' of the decompressed data' if self.compressed else ''})",
                    where=f"{self.display}:line {self.line}",
                    hint="re-encode the file as UTF-8, e.g. iconv -f latin1 -t utf-8 in.csv > out.csv",
                ) from None
            self.offset += len(raw)
            yield text


def _truncated(display: str, lines: _Lines, error: Exception) -> DataError:
    return DataError(
        f"file is truncated or corrupt ({error}); the last line read was line {lines.line}",
        where=f"{display}:line {lines.line}",
        hint="download or compress the file again",
    )


def _read_delimited(stream: BinaryIO, name: str, display: str, builder: "_Builder", *, delimiter: str) -> None:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # documents can exceed the 128 KiB default
    lines = _Lines(stream, display)
    reader = csv.reader(iter(lines), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if not header:
            raise DataError("file is empty (no header row)", where=display, hint="the first line must name the columns")
        index: dict[str, int] = {}
        for i, col in enumerate(header):
            index.setdefault(col.strip(), i)
        builder.check_columns(index, display)
        width = len(header)
        start = reader.line_num + 1
        while True:
            where = f"{display}:line {start}"
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                builder.report.rows_read += 1
                builder.bad(where, f"row does not parse ({e})")
                start = reader.line_num + 1
                continue
            if row:  # csv yields [] for a blank line
                builder.report.rows_read += 1
                if len(row) != width:
                    builder.bad(where, f"row does not parse: expected {width} fields as in the header, found {len(row)}")
                elif any("\0" in v for v in row):
                    builder.bad(where, "row does not parse: it contains a NUL byte")
                else:
                    builder.add(lambda c: row[index[c]], where, f"{name}:line {start}")
            start = reader.line_num + 1
    except (EOFError, OSError, zlib.error, lzma.LZMAError) as e:
        raise _truncated(display, lines, e) from None


def _read_jsonl(stream: BinaryIO, name: str, display: str, builder: "_Builder", **_: Any) -> None:
    lines = _Lines(stream, display)
    checked = False
    try:
        for text in lines:
            if not text.strip():
                continue
            where = f"{display}:line {lines.line}"
            builder.report.rows_read += 1
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                if lines.line == 1 and text.lstrip().startswith("["):
                    raise DataError(
                        "file holds a JSON array, not one JSON object per line",
                        where=display,
                        hint="convert it to JSON Lines, e.g. jq -c '.[]' in.json > out.jsonl",
                    ) from None
                builder.bad(where, f"line is not valid JSON ({e.msg} at column {e.colno})")
                continue
            if not isinstance(obj, dict):
                builder.bad(where, f"line holds a JSON {type(obj).__name__}, not an object")
                continue
            if not checked:
                builder.check_columns(obj, where, what="fields")
                checked = True
            builder.add(obj.get, where, f"{name}:line {lines.line}")
    except (EOFError, OSError, zlib.error, lzma.LZMAError) as e:
        raise _truncated(display, lines, e) from None


def _read_saved_dataset(path: Path, display: str, builder: "_Builder", hf_split: str | None) -> None:
    import datasets

    try:
        data = datasets.load_from_disk(str(path))
    except FileNotFoundError as e:
        raise DataError(
            f"directory is not a saved Hugging Face dataset ({e})",
            where=display,
            hint="pass a directory written by Dataset.save_to_disk, or a data file",
        ) from None
    _read_hf_object(data, path.name, display, builder, hf_split)


def _read_hub(name: str, builder: "_Builder", hf_split: str | None) -> None:
    import datasets

    repo, _, config = name.partition(":")
    try:
        data = datasets.load_dataset(repo, config or None, split=hf_split)
    except Exception as e:  # noqa: BLE001 -- any failure here means "not loadable", reported to the user
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise DataError(
            "path does not exist locally and the Hugging Face Hub could not be reached or has no such "
            f"dataset ({type(e).__name__}: {first[:200]})",
            where=name,
            hint="check the path, or go online and check the dataset name",
        ) from None
    _read_hf_object(data, repo.rsplit("/", 1)[-1], name, builder, None)


def _read_hf_object(data: Any, name: str, display: str, builder: "_Builder", hf_split: str | None) -> None:
    import datasets

    if isinstance(data, datasets.DatasetDict):
        if hf_split is not None:
            if hf_split not in data:
                raise DataError(
                    f"dataset has no split {hf_split!r}", where=display, hint=f"its splits are: {', '.join(data)}"
                )
            _read_hf_split(data[hf_split], name, display, builder, None)
        else:
            builder.keep("split")
            for split, ds in data.items():
                _read_hf_split(ds, f"{name}/{split}", f"{display}/{split}", builder, split)
    else:
        if hf_split is not None:
            raise DataError(
                f"dataset has a single split, so the split {hf_split!r} cannot be picked",
                where=display,
                hint="leave out the split option",
            )
        _read_hf_split(data, name, display, builder, None)


def _read_hf_split(ds: Any, name: str, display: str, builder: "_Builder", split: str | None) -> None:
    import datasets

    # The split name stands in for a real column so that "column:split" works on a DatasetDict.
    virtual = {"split"} if split is not None and "split" not in ds.column_names else set()
    builder.check_columns({c: None for c in [*ds.column_names, *virtual]}, display)
    wanted = [c for c in builder.wanted if c in ds.column_names]
    table = ds.select_columns(wanted).to_dict()
    for col in wanted:
        feature = ds.features[col]
        inner = getattr(feature, "feature", None)
        if isinstance(feature, datasets.ClassLabel):
            table[col] = [None if v is None or v < 0 else feature.int2str(v) for v in table[col]]
        elif isinstance(inner, datasets.ClassLabel):
            table[col] = [None if v is None else [inner.int2str(x) for x in v] for v in table[col]]
    if virtual:
        table["split"] = [split] * len(ds)
    for i in range(len(ds)):
        builder.report.rows_read += 1
        builder.add(lambda c: table[c][i], f"{display}:row {i}", f"{name}:row {i}")


class _Builder:
    """Validates rows from any reader and collects them column-wise."""

    def __init__(self, text_col, label_col, pair_col, label_sep, keep_cols, skip_bad_rows, allow_empty_text, report):
        self.text_col, self.label_col, self.pair_col, self.label_sep = text_col, label_col, pair_col, label_sep
        self.keep_cols = list(keep_cols)
        self.skip_bad_rows, self.allow_empty_text, self.report = skip_bad_rows, allow_empty_text, report
        self.wanted = list(dict.fromkeys(c for c in (text_col, pair_col, label_col, *self.keep_cols) if c is not None))
        self.texts: list[str] = []
        self.pairs: list[str] = []
        self.labels: list[Any] = []
        self.origins: list[str] = []
        self.columns: dict[str, list] = {c: [] for c in self.keep_cols}
        self.saw_list_label = False

    def keep(self, col: str) -> None:
        if col not in self.keep_cols:
            self.keep_cols.append(col)
            self.columns[col] = []
            self.wanted.append(col)

    def check_columns(self, existing: dict, where: str, what: str = "columns") -> None:
        for col in self.wanted:
            if col not in existing:
                names = [str(c) for c in existing]
                close = difflib.get_close_matches(col, names, n=1)
                raise DataError(
                    f"no column {col!r} in {where}; its {what} are: {', '.join(names) or '(none)'}",
                    where=where,
                    hint=f"did you mean {close[0]!r}?" if close else "pick one of the columns listed",
                )

    def bad(self, where: str, reason: str, hint: str = _SKIP_HINT) -> None:
        if not self.skip_bad_rows:
            raise DataError(reason, where=where, hint=hint)
        self.report.skipped.append((where, reason))

    def _text(self, get: Callable[[str], Any], col: str, where: str) -> str | None:
        value = get(col)
        if value is None:
            value = ""
        elif not isinstance(value, str):
            if isinstance(value, (list, dict)):
                self.bad(where, f"{col!r} holds a JSON {type(value).__name__}, not text")
                return None
            value = str(value)
        if (not value or value.isspace()) and not self.allow_empty_text:
            self.bad(
                where,
                f"empty text in column {col!r}",
                hint="fill it in or remove the row, or pass --skip-bad-rows to skip such rows",
            )
            return None
        return value

    def _label(self, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            self.saw_list_label = True
            return [s for s in (str(v).strip() for v in value if v is not None) if s]
        text = "" if value is None else str(value).strip()
        if self.label_sep is not None:
            # An empty label set is a valid multi-label annotation ("none of these"), not a missing label.
            return [s for s in (p.strip() for p in text.split(self.label_sep)) if s]
        return text or None

    def add(self, get: Callable[[str], Any], where: str, origin: str) -> None:
        text = self._text(get, self.text_col, where)
        if text is None:
            return
        pair = None
        if self.pair_col is not None:
            pair = self._text(get, self.pair_col, where)
            if pair is None:
                return
        label = None
        if self.label_col is not None:
            label = self._label(get(self.label_col))
            if label is None:
                self.bad(where, f"missing label in column {self.label_col!r}")
                return
        self.texts.append(text)
        self.pairs.append(pair)
        self.labels.append(label)
        self.origins.append(origin)
        for col in self.keep_cols:
            self.columns[col].append(get(col))

    def build(self, source: str) -> Examples:
        labels = None
        multilabel = self.label_sep is not None or self.saw_list_label
        if self.label_col is not None:
            labels = [[lab] if multilabel and isinstance(lab, str) else lab for lab in self.labels]
        return Examples(
            texts=self.texts,
            labels=labels,
            pairs=self.pairs if self.pair_col is not None else None,
            origins=self.origins,
            columns=self.columns,
            multilabel=multilabel,
            source=source,
        )
