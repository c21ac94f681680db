"""GH Archive hourly files (``YYYY-MM-DD-H.json.gz``, one public GitHub event per line): streamed, filtered.

Kept: IssuesEvent, PullRequestEvent, IssueCommentEvent, PullRequestReviewCommentEvent (the issue or pull
request, and the comment) and PushEvent (one record per commit message).  Files are read in name order (GH
Archive names sort by time); the checkpoint is the last committed line of each file, so a rerun skips what is
done and a file that was truncated while downloading continues where it broke once it is complete.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Iterable

from ..records import Record, parse_time
from .base import Batch, FileConnector, Skip
from .github import comment_record, issue_record

KEPT_EVENTS = ("IssuesEvent", "PullRequestEvent", "IssueCommentEvent", "PullRequestReviewCommentEvent", "PushEvent")
SUFFIXES = (".json.gz", ".jsonl.gz", ".json", ".jsonl", ".ndjson")


def _commit_record(repo: str, commit: dict, event: dict) -> Record:
    message = commit.get("message") or ""
    title, _, body = message.partition("\n")
    when = parse_time(event.get("created_at"))
    return Record(
        source="github", connector="gharchive", project=repo, kind="commit", native_id=f"{repo}@{commit['sha']}",
        url=f"https://github.com/{repo}/commit/{commit['sha']}", title=title.strip(), body=body.strip(),
        author=(commit.get("author") or {}).get("name"), created_at=when, updated_at=when, raw=event)


def event_records(event: dict) -> list[Record]:
    """The records one GH Archive event holds (none for event types that say nothing in words)."""
    kind, repo, payload = event.get("type"), event["repo"]["name"], event.get("payload") or {}
    if kind == "PushEvent":
        return [_commit_record(repo, c, event) for c in payload.get("commits") or []]
    if kind not in KEPT_EVENTS:
        return []
    on = "issue" if kind in ("IssuesEvent", "IssueCommentEvent") else "pull_request"
    thread = issue_record(repo, payload[on], "gharchive", raw=event, pull_request=on == "pull_request")
    if kind.endswith("CommentEvent"):  # the event carries the comment and the state of its issue or PR
        return [thread, comment_record(repo, payload["comment"], "gharchive", parent=payload[on], raw=event)]
    return [thread]


class GHArchiveConnector(FileConnector):
    """Local files or folders of GH Archive hours, or their URLs; ``repos`` limits what is kept (case-insensitive)."""

    name = "gharchive"
    suffixes = SUFFIXES
    unit = "line"
    accepts_urls = True
    hint = "give GH Archive hour files (.json.gz) or a folder holding them"

    def __init__(self, paths: str | Path | Iterable[str | Path], repos: Iterable[str] | None = None,
                 batch_size: int = 500, session=None):
        super().__init__(paths, batch_size)
        self.repos = {r.strip().lower() for r in repos if r.strip()} if repos else None
        self._session = session

    def _open(self, name: str) -> io.BufferedIOBase:
        if not name.startswith(("http://", "https://")):
            return super()._open(name)
        from .http import HttpClient

        raw = HttpClient(session=self._session).stream(name)
        return gzip.GzipFile(fileobj=raw) if name.endswith(".gz") else raw

    def _units(self, stream):
        return iter(stream)

    def _read_unit(self, name: str, line_no: int, line: bytes, batch: Batch) -> None:
        if not line.strip():
            return
        where = f"{name}:{line_no}"
        try:
            event = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            batch.skips.append(Skip(where, f"not a JSON object: {err}"))
            return
        if not isinstance(event, dict) or "type" not in event or "repo" not in event:
            batch.skips.append(Skip(where, "not a GitHub event (no 'type' or 'repo')"))
            return
        if event["type"] not in KEPT_EVENTS or (
                self.repos is not None and str(event["repo"].get("name", "")).lower() not in self.repos):
            batch.filtered += 1
            return
        try:
            batch.records += event_records(event)
        except (KeyError, TypeError, ValueError) as err:
            batch.skips.append(Skip(where, f"{event['type']} without the fields it should have: {err!r}"))
