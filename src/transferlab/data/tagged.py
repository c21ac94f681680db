"""Read token-tagged data (named-entity recognition) from CoNLL or JSON Lines into :class:`TaggedSentences`.

Tags are always stored in IOB2 (``B-X`` opens a chunk, ``I-X`` continues it); IOB1 and BIOES files are
converted on reading and the scheme they were written in is kept in ``TaggedSentences.scheme``.

Bad input (a row with the wrong number of columns, a tag outside the scheme, an ``I-X`` that continues
nothing, a span outside its text...) raises :class:`DataError` naming the file and line, or with
``skip_bad_rows`` drops the whole sentence and records ``(where, reason)`` in the :class:`ReadReport`.
``report.rows_read`` counts every sentence met, skipped ones included (as ``read_examples`` does).

``repair=True`` turns an ``I-X`` that continues nothing into ``B-X``; the number of such repairs is
``TaggedSentences.repaired`` and ``report.repaired`` (a field of :class:`TaggedReadReport`, and set as an
attribute on a plain :class:`ReadReport` too).

Hostile text: lone surrogates (only possible through JSON ``\\ud800`` escapes, since bytes are decoded
strictly) are replaced by U+FFFD, one character for one, so character offsets stay valid; NUL and other
control characters are kept, they are text like any other.  Lines are read one at a time and every step
is linear in the line length, so a 10 MB line is slow only in proportion to its size.
"""

from __future__ import annotations

import io
import json
import lzma
import os
import re
import zlib
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Sequence

import regex

from transferlab.data.readers import ReadReport, _Lines, _open_binary, _truncated
from transferlab.errors import ConfigError, DataError

SCHEMES = ("iob1", "iob2", "bioes")

_TAG = re.compile(r"O|([BIES])-(\S+)")
_SNIFF_TAG = re.compile(r"O|[BIESU]-\S+")
_COLUMNS = re.compile(r"[ \t]+")  # not str.split(): a token may be U+00A0 or U+3000, which are text here
_EDGE_SPACE = " \t\r\n\f\v"
# Words keep their combining marks (Devanagari vowel signs, decomposed accents); any other character
# is a token of its own, with its grapheme cluster so that an emoji with a skin tone stays whole.
_WORD = regex.compile(r"[\w\p{M}]+|(?=[^\w\s])\X")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_JSON_SUFFIXES = {".jsonl", ".json", ".ndjson"}
_COMPRESSED = {".gz", ".bz2", ".xz"}
_SKIP_HINT = "fix or remove the sentence, or pass --skip-bad-rows to skip sentences like this one"
_STREAM_ERRORS = (EOFError, OSError, zlib.error, lzma.LZMAError)


@dataclass
class TaggedReadReport(ReadReport):
    """A :class:`ReadReport` that also counts the tags ``repair=True`` changed."""

    repaired: int = 0

    def summary(self) -> str:
        text = super().summary()
        return f"{text}\nrepaired {self.repaired} I- tags that continued no chunk into B-" if self.repaired else text


@dataclass
class TaggedSentences:
    """Tokenised sentences with IOB2 tags, kept column-wise (one list entry per sentence).

    ``origins`` says where each sentence starts (``"train.txt:line 12"``); ``texts``/``offsets`` are set
    when the data came as text with character spans (offsets count code points, as Python indexes str);
    ``documents`` numbers the ``-DOCSTART-`` documents of a CoNLL file.  ``repaired`` is how many tags
    ``repair=True`` turned from ``I-X`` into ``B-X`` while reading.
    """

    tokens: list[list[str]]
    tags: list[list[str]] | None = None
    origins: list[str] | None = None
    texts: list[str] | None = None
    offsets: list[list[tuple[int, int]]] | None = None
    documents: list[int] | None = None
    source: str = "<memory>"
    scheme: str = "iob2"
    repaired: int = 0

    def __post_init__(self) -> None:
        n = len(self.tokens)
        for name in ("tags", "origins", "texts", "offsets", "documents"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"TaggedSentences.{name} has {len(value)} items but tokens has {n}")
        for name in ("tags", "offsets"):
            value = getattr(self, name)
            for i, (toks, per_token) in enumerate(zip(self.tokens, value or ())):
                if len(toks) != len(per_token):
                    raise ValueError(f"sentence {i} has {len(toks)} tokens but {len(per_token)} {name}")
        if self.origins is None:
            self.origins = [f"{self.source}:#{i}" for i in range(n)]

    def __len__(self) -> int:
        return len(self.tokens)

    def subset(self, indices: Sequence[int]) -> "TaggedSentences":
        idx = list(indices)
        pick = lambda seq: None if seq is None else [seq[i] for i in idx]  # noqa: E731
        return TaggedSentences(
            tokens=pick(self.tokens),
            tags=pick(self.tags),
            origins=pick(self.origins),
            texts=pick(self.texts),
            offsets=pick(self.offsets),
            documents=pick(self.documents),
            source=self.source,
            scheme=self.scheme,
            repaired=self.repaired,
        )

    def tag_names(self) -> list[str]:
        """Sorted distinct IOB2 tags, ``"O"`` first (and always there: a tagger needs it even if unseen)."""
        if self.tags is None:
            return []
        return ["O", *sorted({t for tags in self.tags for t in tags} - {"O"})]

    def entity_types(self) -> list[str]:
        if self.tags is None:
            return []
        return sorted({t[2:] for tags in self.tags for t in tags if t != "O"})


# ---------------------------------------------------------------- schemes


def _split_tag(tag: str) -> tuple[str, str]:
    """``"B-PER"`` -> ``("B", "PER")``, ``"O"`` -> ``("O", "")``; anything else is a DataError."""
    m = _TAG.fullmatch(tag) if isinstance(tag, str) else None
    if m is None:
        raise DataError(f"tag {_short(tag)} is not O, B-X, I-X, E-X or S-X", hint=_tag_hint(tag))
    return (m.group(1) or "O", m.group(2) or "")


def to_iob2(tags: Iterable[str], scheme: str) -> list[str]:
    """Convert ``tags`` written in ``scheme`` to IOB2.  IOB2 input is returned as it is, unrepaired."""
    _check_scheme(scheme, allow_auto=False)
    out: list[str] = []
    prev_type = ""  # type of the chunk the previous tag belongs to; "" after O
    for tag in tags:
        prefix, typ = _split_tag(tag)
        if prefix in "ES" and scheme != "bioes":
            raise DataError(f"tag {tag!r} is not part of the {scheme} scheme", hint="read the data as bioes")
        if prefix == "O":
            out.append("O")
        elif prefix == "S" or (prefix == "I" and scheme == "iob1" and prev_type != typ):
            out.append(f"B-{typ}")
        else:
            out.append(f"{'B' if prefix == 'B' else 'I'}-{typ}")
        prev_type = typ
    return out


def iob2_to_bioes(tags: Sequence[str]) -> list[str]:
    """Convert IOB2 ``tags`` to BIOES.  An ``I-X`` that continues nothing is taken to open a chunk."""
    parts = [_split_tag(t) for t in tags]
    out = []
    for i, (prefix, typ) in enumerate(parts):
        if prefix in "ES":
            raise DataError(f"tag {tags[i]!r} is not IOB2", hint="convert the tags with to_iob2 first")
        if prefix == "O":
            out.append("O")
            continue
        opens = prefix == "B" or i == 0 or parts[i - 1] not in (("B", typ), ("I", typ))
        goes_on = i + 1 < len(parts) and parts[i + 1] == ("I", typ)
        out.append(f"{('B' if goes_on else 'S') if opens else ('I' if goes_on else 'E')}-{typ}")
    return out


def _detect_scheme(sequences: list[list[str]]) -> str:
    """BIOES if any E-/S- tag; IOB1 if some chunk opens with I- and every B-X follows an X chunk; else IOB2."""
    if any(t[:2] in ("E-", "S-") for tags in sequences for t in tags):
        return "bioes"
    opens_with_i = False
    for tags in sequences:
        prev = "O"
        for tag in tags:
            continues = prev != "O" and tag[2:] == prev[2:]
            if tag.startswith("B-") and not continues:
                return "iob2"
            opens_with_i = opens_with_i or (tag.startswith("I-") and not continues)
            prev = tag
    return "iob1" if opens_with_i else "iob2"


def _check_scheme(scheme: str, *, allow_auto: bool) -> None:
    allowed = (("auto",) if allow_auto else ()) + SCHEMES
    if scheme not in allowed:
        raise ConfigError(f"unknown tag scheme {scheme!r}", hint=f"use one of: {', '.join(allowed)}")


def _tag_hint(tag: object) -> str:
    if isinstance(tag, str) and tag[:2] in ("L-", "U-"):
        return "BILOU tags are not read; rename L- to E- and U- to S- (that is BIOES)"
    return "tags are O or a prefix B-, I-, E- or S- and an entity type, e.g. B-PER"


# ---------------------------------------------------------------- reading

class _Bad(Exception):
    """One sentence is bad; ``line`` is where (None: the line the reader is on)."""

    def __init__(self, reason: str, line: int | None = None, hint: str = _SKIP_HINT):
        super().__init__(reason)
        self.reason, self.line, self.hint = reason, line, hint


@dataclass
class _Raw:
    """A sentence as read, before its tags are checked against the scheme and converted."""

    tokens: list[str]
    tags: list[str]
    lines: list[int]  # the line of each token, for messages
    origin: str
    document: int | None = None
    text: str | None = None
    offsets: list[tuple[int, int]] | None = None


class _Sink:
    def __init__(self, display: str, skip_bad_rows: bool, report: ReadReport):
        self.display, self.skip_bad_rows, self.report = display, skip_bad_rows, report

    def bad(self, error: _Bad, line: int) -> None:
        where = f"{self.display}:line {error.line if error.line is not None else line}"
        if not self.skip_bad_rows:
            raise DataError(error.reason, where=where, hint=error.hint)
        self.report.skipped.append((where, error.reason))


def read_conll(
    path: str | Path,
    *,
    scheme: str = "auto",
    repair: bool = False,
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
) -> TaggedSentences:
    """Read a CoNLL file: ``token ... TAG`` per line, a blank line between sentences, ``-DOCSTART-`` documents."""
    return _read(path, _ConllParser, scheme, repair, skip_bad_rows, report)


def read_tagged_jsonl(
    path: str | Path,
    *,
    scheme: str = "auto",
    repair: bool = False,
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
) -> TaggedSentences:
    """Read JSON Lines of ``{"tokens": [...], "tags": [...]}`` or ``{"text": ..., "spans": [...]}``.

    Text is tokenised with :func:`tokenize_with_offsets`, and a token is cut where a span starts or ends
    inside it, so every span maps onto whole tokens (a span's edge spaces fall outside every token, so
    :func:`spans_from_tags` gives it back without them).  Spans give IOB2 tags; ``scheme`` applies to
    ``tags`` lists only.  An optional ``"id"`` field is kept in the sentence's origin.
    """
    return _read(path, _JsonlParser, scheme, repair, skip_bad_rows, report)


def read_tagged(path: str | Path, **kw) -> TaggedSentences:
    """Read JSON Lines if the name ends .jsonl/.json/.ndjson (maybe compressed) or the data starts with an object."""
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes.pop()
    is_json = bool(suffixes) and suffixes[-1] in _JSON_SUFFIXES
    if not is_json and p.is_file():
        try:
            head = _head_lines(p)
        except (OSError, *_STREAM_ERRORS):
            head = []  # the CoNLL reader will say what is wrong with the file
        is_json = bool(head) and regex.match(r'\{\s*"', head[0]) is not None
    return (read_tagged_jsonl if is_json else read_conll)(path, **kw)


def _read(path, parser_class, scheme, repair, skip_bad_rows, report) -> TaggedSentences:
    _check_scheme(scheme, allow_auto=True)
    path = Path(path)
    display = str(path)
    report = report if report is not None else TaggedReadReport(source=display)
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "file not found"
        raise DataError(what, where=display, hint="check the path (it is relative to the current directory)")
    sink = _Sink(display, skip_bad_rows, report)
    parser = parser_class(path.name, sink)
    try:
        stream = _open_binary(path)
    except OSError as e:
        reason = f"cannot open the file ({e.strerror or e})"
        raise DataError(reason, where=display, hint="check that it can be read") from None
    with stream:
        lines = _Lines(stream, display)
        try:
            for text in lines:
                parser.feed(text, lines.line)
            parser.end(lines.line)
        except _STREAM_ERRORS as e:
            raise _truncated(display, lines, e) from None
    return _finish(parser, scheme, repair, sink)


def _finish(parser, scheme: str, repair: bool, sink: _Sink) -> TaggedSentences:
    raws: list[_Raw] = parser.sentences
    if parser.from_spans or scheme == "auto":
        scheme = "iob2" if parser.from_spans else _detect_scheme([r.tags for r in raws])
    kept, tags, repaired = [], [], 0
    for raw in raws:
        try:
            iob2, fixed = _checked_iob2(raw, scheme, repair)
        except _Bad as e:
            sink.bad(e, raw.lines[0])
            continue
        kept.append(raw)
        tags.append(iob2)
        repaired += fixed
    if not kept:
        _no_sentences(sink)
    sink.report.repaired = repaired  # a plain ReadReport takes the attribute too (it has no __slots__)
    spans = parser.from_spans
    return TaggedSentences(
        tokens=[r.tokens for r in kept],
        tags=tags,
        origins=[r.origin for r in kept],
        texts=[r.text for r in kept] if spans else None,
        offsets=[r.offsets for r in kept] if spans else None,
        documents=[r.document for r in kept] if parser.has_documents else None,
        source=sink.display,
        scheme=scheme,
        repaired=repaired,
    )


def _no_sentences(sink: _Sink) -> None:
    skipped = len(sink.report.skipped)
    reason = f"no sentences left: all {skipped} were skipped as bad" if skipped else "no sentences in the file"
    raise DataError(reason, where=sink.display, hint="check the file holds tagged sentences in the expected format")


def _checked_iob2(raw: _Raw, scheme: str, repair: bool) -> tuple[list[str], int]:
    """The sentence's tags in IOB2 and the number repaired, or _Bad naming the token's line."""
    for i, tag in enumerate(raw.tags):
        if tag[:2] in ("E-", "S-") and scheme != "bioes":
            raise _Bad(
                f"tag {tag!r} of token {_short(raw.tokens[i])} is not part of the {scheme} scheme",
                raw.lines[i],
                hint="read the file with tag scheme bioes (or auto), or fix the tag",
            )
    iob2 = to_iob2(raw.tags, scheme)
    repaired = 0
    for i, tag in enumerate(iob2):
        prev = iob2[i - 1] if i else "O"
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            if not repair:
                typ = tag[2:]
                raise _Bad(
                    f"tag {raw.tags[i]!r} of token {_short(raw.tokens[i])} does not continue a {typ} chunk "
                    f"(it follows {raw.tags[i - 1] if i else 'the sentence start'!r})",
                    raw.lines[i],
                    hint=f"pass --repair-tags to turn it into B-X (B-{typ} here), or fix the tag",
                )
            iob2[i] = f"B-{tag[2:]}"
            repaired += 1
    return iob2, repaired


class _ConllParser:
    """Collects sentences line by line; a bad line spoils its whole sentence."""

    from_spans = False
    has_documents = True

    def __init__(self, name: str, sink: _Sink):
        self.name, self.sink = name, sink
        self.sentences: list[_Raw] = []
        self.width: int | None = None
        self.width_line = 0
        self.document = 0
        self.document_used = False
        self._reset()

    def _reset(self) -> None:
        self.tokens, self.tags, self.lines = [], [], []
        self.spoiled = False

    def feed(self, text: str, line: int) -> None:
        cols = _COLUMNS.split(text.strip(_EDGE_SPACE))
        if cols == [""]:
            self.end(line)
        elif cols[0] == "-DOCSTART-":
            self.end(line)
            if self.document_used:
                self.document, self.document_used = self.document + 1, False
        elif not self.spoiled:  # the rest of a spoiled sentence is skipped with it, unchecked
            try:
                self._add(cols, line)
            except (_Bad, DataError) as e:
                self.spoiled = True
                self.lines.append(line)
                self.sink.bad(e if isinstance(e, _Bad) else _Bad(e.message, hint=e.hint or _SKIP_HINT), line)

    def _add(self, cols: list[str], line: int) -> None:
        if self.width is None and len(cols) >= 2:
            self.width, self.width_line = len(cols), line
        if len(cols) < 2:
            raise _Bad(f"line has {len(cols)} column; a token line needs a token and a tag")
        if len(cols) != self.width:
            raise _Bad(
                f"line has {len(cols)} columns but the file's first token line (line {self.width_line}) "
                f"has {self.width}"
            )
        _split_tag(cols[-1])
        self.tokens.append(cols[0])
        self.tags.append(cols[-1])
        self.lines.append(line)

    def end(self, line: int) -> None:
        if self.lines:
            self.sink.report.rows_read += 1
            self.document_used = True
            if not self.spoiled:
                origin = f"{self.name}:line {self.lines[0]}"
                self.sentences.append(_Raw(self.tokens, self.tags, self.lines, origin, self.document))
        self._reset()


class _JsonlParser:
    """One sentence per line, as tokens with tags or as text with character spans (not both in one file)."""

    has_documents = False

    def __init__(self, name: str, sink: _Sink):
        self.name, self.sink = name, sink
        self.sentences: list[_Raw] = []
        self.kind: tuple[str, int] | None = None  # ("tokens" | "text", line that fixed it)

    @property
    def from_spans(self) -> bool:
        return self.kind is not None and self.kind[0] == "text"

    def feed(self, text: str, line: int) -> None:
        if not text.strip():
            return
        self.sink.report.rows_read += 1
        try:
            self.sentences.append(self._parse(text, line))
        except _Bad as e:
            self.sink.bad(e, line)

    def end(self, line: int) -> None:
        pass

    def _parse(self, text: str, line: int) -> _Raw:
        obj = _json_object(text, line)
        kind = "tokens" if "tokens" in obj else "text" if "text" in obj else None
        if kind is None:
            raise _Bad(f"object has neither 'tokens' nor 'text' (its fields: {_short(', '.join(map(str, obj)))})")
        if self.kind is None:
            self.kind = (kind, line)
        elif self.kind[0] != kind:
            raise _Bad(f"object has {kind!r} but the file's first object (line {self.kind[1]}) has {self.kind[0]!r}")
        origin = f"{self.name}:line {line}"
        if obj.get("id") is not None:
            origin += f" (id {_clean(str(obj['id']))[:200]})"
        raw = _from_tokens(obj) if kind == "tokens" else _from_spans(obj)
        raw.lines, raw.origin = [line] * len(raw.tokens), origin
        return raw


def _json_object(text: str, line: int) -> dict:
    try:
        obj = json.loads(text)
    except RecursionError:
        raise _Bad("line is nested too deeply to be a tagged sentence") from None
    except ValueError as e:  # JSONDecodeError, and ints beyond Python's digit limit
        if line == 1 and text.lstrip().startswith("["):
            raise _Bad(
                "file holds a JSON array, not one JSON object per line",
                hint="convert it to JSON Lines, e.g. jq -c '.[]' in.json > out.jsonl",
            ) from None
        raise _Bad(f"line is not valid JSON ({_short(str(e))})") from None
    if not isinstance(obj, dict):
        raise _Bad(f"line holds a JSON {type(obj).__name__}, not an object")
    return obj


def _from_tokens(obj: dict) -> _Raw:
    tokens, tags = obj["tokens"], obj.get("tags")
    if not isinstance(tokens, list) or not tokens:
        raise _Bad("'tokens' must be a non-empty list (an empty sentence is not a sentence)")
    if not isinstance(tags, list) or len(tags) != len(tokens):
        got = f"{len(tags)} tags" if isinstance(tags, list) else "no 'tags' list"
        raise _Bad(f"{len(tokens)} tokens but {got}")
    for i, tok in enumerate(tokens):
        if not isinstance(tok, str) or not tok.strip():
            raise _Bad(f"token {i} is {_short(tok)}; tokens must be non-blank strings")
        try:
            _split_tag(tags[i])
        except DataError as e:
            raise _Bad(f"token {i} ({_short(tok)}): {e.message}", hint=e.hint or _SKIP_HINT) from None
    return _Raw([_clean(t) for t in tokens], [_clean(t) for t in tags], [], "")


def _from_spans(obj: dict) -> _Raw:
    text, spans = obj["text"], obj.get("spans")
    if not isinstance(text, str):
        raise _Bad(f"'text' is a JSON {type(text).__name__}, not a string")
    if not isinstance(spans, list):
        raise _Bad("'spans' must be a list of {start, end, label} objects (an empty list if there are none)")
    text = _clean(text)
    spans = sorted((_span(s, i, len(text)) for i, s in enumerate(spans)), key=lambda s: (s[0], s[1]))
    for a, b in zip(spans, spans[1:]):
        if b[0] < a[1]:
            raise _Bad(f"spans {a[3]} ({a[0]}, {a[1]}) and {b[3]} ({b[0]}, {b[1]}) overlap")
    words = _cut_at(tokenize_with_offsets(text), sorted({p for s in spans for p in s[:2]}), text)
    if not words:
        raise _Bad("text has no tokens (an empty sentence is not a sentence)")
    offsets = [(s, e) for _, s, e in words]
    return _Raw([w for w, _, _ in words], _tags_for(spans, offsets), [], "", text=text, offsets=offsets)


def _span(span: object, i: int, length: int) -> tuple[int, int, str, int]:
    if not isinstance(span, dict):
        raise _Bad(f"span {i} is a JSON {type(span).__name__}, not an object")
    start, end, label = span.get("start"), span.get("end"), span.get("label")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
        raise _Bad(f"span {i} needs integer 'start' and 'end'")
    if not isinstance(label, str) or _TAG.fullmatch(f"B-{label}") is None:
        raise _Bad(f"span {i} has label {_short(label)}; a label is a non-empty string without spaces")
    if start < 0 or end > length:
        raise _Bad(f"span {i} ({start}, {end}) is outside its text of {length} characters")
    if start >= end:
        raise _Bad(f"span {i} ({start}, {end}) is empty or reversed: start must be below end")
    return start, end, label, i


def _cut_at(words: list[tuple[str, int, int]], cuts: list[int], text: str) -> list[tuple[str, int, int]]:
    """Split tokens where a span boundary falls inside them, so spans map onto whole tokens."""
    out = []
    for word, start, end in words:
        inner = cuts[bisect_right(cuts, start) : bisect_left(cuts, end)]
        for a, b in zip([start, *inner], [*inner, end]):
            out.append((text[a:b], a, b) if inner else (word, a, b))
    return out


def _tags_for(spans: list[tuple[int, int, str, int]], offsets: list[tuple[int, int]]) -> list[str]:
    tags = ["O"] * len(offsets)
    starts = [s for s, _ in offsets]
    for start, end, label, i in spans:
        first = bisect_left(starts, start)
        last = bisect_left(starts, end)  # tokens never straddle a boundary, so these are the covered ones
        if first == last:
            raise _Bad(f"span {i} ({start}, {end}) covers no token (only spaces)")
        tags[first:last] = [f"B-{label}"] + [f"I-{label}"] * (last - first - 1)
    return tags


# ---------------------------------------------------------------- text, spans and output


def tokenize_with_offsets(text: str) -> list[tuple[str, int, int]]:
    """Words (with their combining marks) and single punctuation or symbol characters, with (start, end)."""
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def spans_from_tags(tags: Sequence[str], offsets: Sequence[tuple[int, int]], text: str) -> list[dict]:
    """Chunks of IOB2 ``tags`` as ``{"start", "end", "label", "text"}``; an ``I-X`` after no X chunk opens one."""
    if len(tags) != len(offsets):
        raise ValueError(f"{len(tags)} tags but {len(offsets)} offsets")
    spans: list[dict] = []
    prev = "O"
    for tag, (start, end) in zip(tags, offsets):
        prefix, typ = _split_tag(tag)
        if prefix == "O":
            pass
        elif prefix == "I" and prev != "O" and prev[2:] == typ:
            spans[-1]["end"] = end
        else:
            spans.append({"start": start, "end": end, "label": typ})
        prev = tag
    for span in spans:
        span["text"] = text[span["start"] : span["end"]]
    return spans


def write_conll(
    path_or_stream: str | os.PathLike | IO,
    tokens: Sequence[Sequence[str]],
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
) -> None:
    """Write ``token gold pred`` lines with a blank line after each sentence (the conlleval layout).

    Whitespace inside a token (or an empty token) becomes ``_`` so that every line keeps three columns.
    """
    if not len(tokens) == len(gold) == len(pred):
        raise ValueError(f"{len(tokens)} sentences of tokens, {len(gold)} of gold tags, {len(pred)} of predictions")
    for i, (toks, g, p) in enumerate(zip(tokens, gold, pred)):
        if not len(toks) == len(g) == len(p):
            raise ValueError(f"sentence {i}: {len(toks)} tokens, {len(g)} gold tags, {len(p)} predictions")
    if isinstance(path_or_stream, (str, os.PathLike)):
        with open(path_or_stream, "w", encoding="utf-8", newline="\n") as f:
            _write_sentences(f, tokens, gold, pred)
    elif isinstance(path_or_stream, (io.RawIOBase, io.BufferedIOBase)):
        text = io.StringIO()
        _write_sentences(text, tokens, gold, pred)
        path_or_stream.write(text.getvalue().encode("utf-8"))
    else:
        _write_sentences(path_or_stream, tokens, gold, pred)


def _write_sentences(f: IO[str], tokens, gold, pred) -> None:
    for toks, g, p in zip(tokens, gold, pred):
        f.writelines(f"{_column(t)} {_column(a)} {_column(b)}\n" for t, a, b in zip(toks, g, p))
        f.write("\n")


def _column(value: str) -> str:
    return regex.sub(r"\s+", "_", _clean(str(value))) or "_"


# ---------------------------------------------------------------- sniffing and small helpers


def looks_like_conll(path: str | Path) -> bool:
    """True if the first non-blank lines are ``token ... TAG`` with one column count and tags O or [BIESU]-X."""
    try:
        lines = [ln for ln in _head_lines(Path(path)) if not ln.startswith("-DOCSTART-")]
    except (OSError, *_STREAM_ERRORS):
        return False
    rows = [_COLUMNS.split(ln) for ln in lines[:20]]
    return (
        bool(rows)
        and len({len(r) for r in rows}) == 1
        and len(rows[0]) >= 2
        and all(_SNIFF_TAG.fullmatch(r[-1]) for r in rows)
    )


def _head_lines(path: Path, size: int = 64 * 1024) -> list[str]:
    """Non-blank lines, edge-stripped, from the first ``size`` bytes (decompressed); a cut-off last line is left out."""
    with _open_binary(path) as stream:
        head = stream.read(size)
        complete = len(head) < size
    lines = head.decode("utf-8", errors="replace").split("\n")
    if not complete:
        lines.pop()
    return [s for s in (ln.strip(_EDGE_SPACE) for ln in lines) if s]


def _clean(text: str) -> str:
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
