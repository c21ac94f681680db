"""The one shape every source is turned into, and the identifiers found in its text.

A :class:`Record` is what a connector yields and what the store keeps: where it came from (``source`` is the
platform: github, bugzilla, jira, mail; ``connector`` the reader that fetched it), what it is (``kind``), its
text, its people and times, and the raw payload, so nothing the source said is lost.  ``(source, native_id)``
is its identity: the same GitHub issue read from GH Archive and from the REST API is one record.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

KINDS = ("issue", "pull_request", "comment", "commit", "bug", "mail")

CVE_RE = re.compile(r"\bCVE-(\d{4})-(\d{4,7})\b", re.IGNORECASE)
GHSA_RE = re.compile(r"\bGHSA(?:-[23456789cfghjmpqrvwx]{4}){3}\b", re.IGNORECASE)
CWE_RE = re.compile(r"\bCWE-(\d{1,4})\b", re.IGNORECASE)
URL_RE = re.compile(r"https?://[^\s<>\"'`)\]}]+", re.IGNORECASE)

# Column widths of the store's bounded columns (a migration is a frozen snapshot, so they are repeated here).
BOUNDED = {"source": 32, "connector": 32, "kind": 32, "native_id": 512, "project": 512, "parent_id": 512}
ORIGINALS = "_transferlab_originals"
"""Key under which ``raw`` keeps a bounded field's original value."""
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_TEXT = ("source", "connector", "project", "kind", "native_id", "title", "body")
_OPTIONAL_TEXT = ("url", "author", "parent_id")


@dataclass
class Record:
    source: str
    connector: str
    project: str
    kind: str
    native_id: str
    url: str | None = None
    title: str = ""
    body: str = ""
    author: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    labels: list[str] = field(default_factory=list)
    parent_id: str | None = None
    references: dict[str, list[str]] = field(default_factory=dict)
    raw: Any = None
    origin: str | None = field(default=None, compare=False, repr=False)
    """Where the connector read it (``file:line``, ``file: message 3``): the place a skip names."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown record kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        self._make_storable()
        if not self.references:
            self.references = extract_references(f"{self.title}\n{self.body}")

    def _make_storable(self) -> None:
        """The one place where text written by strangers becomes text every database accepts: lone surrogates
        become U+FFFD, NUL goes (PostgreSQL text and JSONB refuse both), non-text becomes text, and a value too long
        for its column is cut to a prefix plus a hash of the whole, so identities stay distinct; ``raw`` keeps the
        original."""
        for name in _TEXT + _OPTIONAL_TEXT:
            value = getattr(self, name)
            if value is None and name in _OPTIONAL_TEXT:
                continue
            setattr(self, name, storable_text(value))
        self.labels = [storable_text(v) for v in self.labels] if isinstance(self.labels, (list, tuple)) else []
        self.created_at, self.updated_at = parse_time(self.created_at), parse_time(self.updated_at)
        self.raw = storable(self.raw)
        originals = {}
        for name, width in BOUNDED.items():
            value = getattr(self, name)
            if value is not None and len(value) > width:
                originals[name] = value
                setattr(self, name, bounded(value, width))
        if originals:
            self.raw = {**self.raw, ORIGINALS: originals} if isinstance(self.raw, dict) else \
                {"raw": self.raw, ORIGINALS: originals}

    @property
    def text(self) -> str:
        """What a classifier reads: the title, then the body."""
        return f"{self.title}\n\n{self.body}".strip()

    def as_dict(self) -> dict:
        d = asdict(self)
        del d["origin"]
        for key in ("created_at", "updated_at"):
            d[key] = d[key].isoformat() if d[key] else None
        return d


def storable_text(value: Any) -> str:
    """``value`` as text a database stores: lone surrogates -> U+FFFD, NUL removed, anything else -> ``str``."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = value if isinstance(value, str) else str(value)
    # isascii() and encode() are C loops, twice as fast as a regex scan on ingest's hot path; encoding fails only
    # where a lone surrogate is
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", text)
    return text.replace("\x00", "") if "\x00" in text else text


_CONTAINERS = (dict, list, tuple)
MAX_DEPTH = 100_000
"""Deeper than any parser hands us (json.loads stops near 1,000): only a payload that contains itself gets here."""


def _storable_leaf(value: Any) -> Any:
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def storable(value: Any) -> Any:
    """A JSON payload with every string (keys too) made :func:`storable_text` and non-finite numbers as text
    (JSONB has no NaN or Infinity); other JSON values are returned as they are.

    An explicit stack, not recursion: a stranger's payload may nest an unused field as deep as the JSON parser
    allows, and Python's recursion limit is below that.  Each container is copied into an empty one that is
    already in place in its parent, so order (and, for equal keys after repair, the last value) is kept."""
    if not isinstance(value, _CONTAINERS):
        return _storable_leaf(value)
    root: Any = {} if isinstance(value, dict) else []
    stack = [(value, root, 1)]
    while stack:
        source, target, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"the payload is nested more than {MAX_DEPTH} levels deep (does it contain itself?)")
        is_dict = isinstance(source, dict)
        for key, item in (source.items() if is_dict else enumerate(source)):
            if item.__class__ is str:  # the common case first: this runs for every value ingested
                item = storable_text(item)
            elif isinstance(item, _CONTAINERS):
                child: Any = {} if isinstance(item, dict) else []
                stack.append((item, child, depth + 1))
                item = child
            else:
                item = _storable_leaf(item)
            if is_dict:
                target[storable_text(key)] = item
            else:
                target.append(item)
    return root


def bounded(value: str, width: int) -> str:
    """``value`` cut to ``width`` characters, keeping a prefix and a SHA-256 of the whole so that two long values
    that share the prefix stay two identities."""
    digest = "#sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()
    return value[: width - len(digest)] + digest


def extract_references(text: str) -> dict[str, list[str]]:
    """CVE, GHSA and CWE ids and linked URLs, normalised (upper-case ids), de-duplicated, in order of appearance."""
    text = text or ""
    found = {
        "cve": [f"CVE-{y}-{n}" for y, n in CVE_RE.findall(text)],
        "ghsa": ["GHSA-" + m[5:].lower() for m in GHSA_RE.findall(text)],
        "cwe": [f"CWE-{int(n)}" for n in CWE_RE.findall(text)],
        "urls": [u.rstrip(".,;:!?") for u in URL_RE.findall(text)],
    }
    return {k: list(dict.fromkeys(v)) for k, v in found.items() if v}


def stamp(dt: datetime | None) -> str | None:
    """A UTC time as the APIs take it in ``since`` parameters and as checkpoints keep it: ``2016-05-15T15:09:29Z``."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if dt else None


def newest(times, current: str | None = None) -> str | None:
    """The latest of ``current`` and ``times`` (datetimes, None ignored), as a :func:`stamp`: a high-water mark."""
    stamps = [s for s in (stamp(t) for t in times) if s] + ([current] if current else [])
    return max(stamps, default=None)


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 (GitHub, Bugzilla), JIRA's ``+0000`` offsets, RFC 2822 (mail) or epoch seconds -> aware UTC.

    Anything else (``1e20``, NaN, a year past 9999 or before 1, a list, a boolean) is None: a time a stranger
    wrote wrong costs the record its time, never the record."""
    try:
        if isinstance(value, datetime):
            dt = value
        elif isinstance(value, bool) or not isinstance(value, (int, float, str)):
            return None
        elif isinstance(value, (int, float)):
            dt = datetime.fromtimestamp(value, tz=timezone.utc)
        else:
            text = value.strip()
            if not text:
                return None
            try:
                dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                dt = parsedate_to_datetime(text)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.astimezone(timezone.utc)
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None
