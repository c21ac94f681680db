"""The one shape every source is turned into, and the identifiers found in its text.

A :class:`Record` is what a connector yields and what the store keeps: where it came from (``source`` is the
platform: github, bugzilla, jira, mail; ``connector`` the reader that fetched it), what it is (``kind``), its
text, its people and times, and the raw payload, so nothing the source said is lost.  ``(source, native_id)``
is its identity: the same GitHub issue read from GH Archive and from the REST API is one record.
"""

from __future__ import annotations

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

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown record kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if not self.references:
            self.references = extract_references(f"{self.title}\n{self.body}")

    @property
    def text(self) -> str:
        """What a classifier reads: the title, then the body."""
        return f"{self.title}\n\n{self.body}".strip()

    def as_dict(self) -> dict:
        d = asdict(self)
        for key in ("created_at", "updated_at"):
            d[key] = d[key].isoformat() if d[key] else None
        return d


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
    """ISO 8601 (GitHub, Bugzilla), JIRA's ``+0000`` offsets, RFC 2822 (mail) or epoch seconds -> aware UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, (int, float)):
        dt = datetime.fromtimestamp(value, tz=timezone.utc)
    else:
        text = str(value).strip()
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            try:
                dt = parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)
