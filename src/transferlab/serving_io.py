"""JSONL in, JSONL out: parsing with line numbers, so a bad line is named, never silently dropped."""

from __future__ import annotations

import json
from typing import Iterable, Iterator, TextIO

from .errors import DataError


def iter_jsonl(stream: TextIO | Iterable[str], name: str, text_field: str, pair_field: str | None,
               batch_size: int) -> Iterator[list[dict]]:
    chunk: list[dict] = []
    for lineno, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"not valid JSON ({exc.msg}, column {exc.colno})", where=f"{name}:line {lineno}",
                            hint='one JSON object per line, e.g. {"text": "..."}') from None
        for field in filter(None, (text_field, pair_field)):
            if not isinstance(obj, dict) or not isinstance(obj.get(field), str):
                raise DataError(f"no string field {field!r}", where=f"{name}:line {lineno}",
                                hint=f"each line needs {field!r}, or name the field with --text-field")
        chunk.append(obj)
        if len(chunk) >= batch_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def scored(clf, chunk: list[dict], text_field: str, pair_field: str | None) -> Iterator[dict]:
    """Each input object with "label" and "scores" added and its text fields left out (what `predict` writes)."""
    texts = [obj[text_field] for obj in chunk]
    X = list(zip(texts, [obj[pair_field] for obj in chunk])) if pair_field else texts
    proba = clf.predict_proba(X)
    for obj, label, row in zip(chunk, clf.decode(proba), proba):
        rest = {k: v for k, v in obj.items() if k not in (text_field, pair_field)}
        rest.update(label=label, scores={lab: round(float(p), 6) for lab, p in zip(clf.labels_, row)})
        yield rest
