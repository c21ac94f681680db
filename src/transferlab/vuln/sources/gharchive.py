"""GH Archive hourly files (``YYYY-MM-DD-H.json.gz``, one public GitHub event per line): streamed, filtered.

Kept: IssuesEvent, PullRequestEvent, IssueCommentEvent, PullRequestReviewCommentEvent (the issue or pull
request, and the comment) and PushEvent (one record per commit message).  Files are read in name order (GH
Archive names sort by time); the checkpoint is the last committed line of each file, so a rerun skips what is
done and a file that was truncated while downloading continues where it broke once it is complete.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Iterable

from ..records import Record, parse_time
from .base import Batch, FileConnector, Skip
from .fields import BadItem, github_repo, loads, need, obj, sha, text
from .github import comment_record, issue_record

KEPT_EVENTS = ("IssuesEvent", "PullRequestEvent", "IssueCommentEvent", "PullRequestReviewCommentEvent", "PushEvent")
SUFFIXES = (".json.gz", ".jsonl.gz", ".json", ".jsonl", ".ndjson")


def _commit_record(repo: str, commit, event: dict) -> Record:
    commit = need(obj(commit) or None, "commit object")
    commit_sha = need(sha(commit.get("sha")), "commit sha")
    title, _, body = (text(commit.get("message")) or "").partition("\n")
    created = parse_time(event.get("created_at"))
    return Record(
        source="github", connector="gharchive", project=repo, kind="commit", native_id=f"{repo}@{commit_sha}",
        url=f"https://github.com/{repo}/commit/{commit_sha}", title=title.strip(), body=body.strip(),
        author=text(obj(commit.get("author")).get("name")), created_at=created, updated_at=created, raw=event)


def event_records(event: dict, problems: list[tuple[str, str]] | None = None) -> list[Record]:
    """The records one GH Archive event holds (none for event types that say nothing in words).  Raises
    :class:`~.fields.BadItem` when the event lacks what its records cannot do without; a push's commit that does
    is left out and noted in ``problems`` as ``("commit N", reason)``, its other commits kept."""
    kind, payload = text(event.get("type")), event.get("payload")
    if not isinstance(payload, dict):
        raise BadItem("no payload object")
    repo = need(github_repo(obj(event.get("repo")).get("name")), "repository name (owner/name)")
    if kind == "PushEvent":
        commits = payload.get("commits", [])  # absent since GitHub's 2025 events API change: nothing to keep
        if not isinstance(commits, list):
            raise BadItem("no usable list of commits")
        found = []
        for n, commit in enumerate(commits, start=1):
            try:
                found.append(_commit_record(repo, commit, event))
            except BadItem as err:
                if problems is not None:
                    problems.append((f"commit {n}", str(err)))
        return found
    if kind not in KEPT_EVENTS:
        return []
    on = "issue" if kind in ("IssuesEvent", "IssueCommentEvent") else "pull_request"
    parent = payload.get(on)
    thread = issue_record(repo, parent, "gharchive", raw=event, pull_request=on == "pull_request")
    if kind.endswith("CommentEvent"):  # the event carries the comment and the state of its issue or PR
        return [thread, comment_record(repo, payload.get("comment"), "gharchive", parent=parent, raw=event)]
    return [thread]


class GHArchiveConnector(FileConnector):
    """Local files or folders of GH Archive hours, or their URLs; ``repos`` limits what is kept (case-insensitive)."""

    name = "gharchive"
    suffixes = SUFFIXES
    unit = "line"
    accepts_urls = True
    hint = "give GH Archive hour files (.json.gz) or a folder holding them"

    def __init__(self, paths: str | Path | Iterable[str | Path], repos: Iterable[str] | None = None,
                 batch_size: int = 500, session=None, max_record_bytes: int | None = None):
        super().__init__(paths, batch_size, max_record_bytes)
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
            event = loads(line)
        except (ValueError, RecursionError) as err:  # not UTF-8, not JSON, 5000-digit numbers, nested too deep
            batch.skips.append(Skip(where, f"not a JSON object: {type(err).__name__}: {str(err)[:200]}"))
            return
        if not isinstance(event, dict) or "type" not in event or "repo" not in event:
            batch.skips.append(Skip(where, "not a GitHub event (no 'type' or 'repo')"))
            return
        kind = text(event["type"])
        if kind not in KEPT_EVENTS:
            batch.filtered += 1
            return
        repo = github_repo(obj(event["repo"]).get("name"))
        if repo is None:
            batch.skips.append(Skip(where, f"{kind} without a repository name (owner/name)"))
            return
        if self.repos is not None and repo.lower() not in self.repos:
            batch.filtered += 1
            return
        problems: list[tuple[str, str]] = []
        try:
            found = event_records(event, problems)
        except BadItem as err:
            batch.skips.append(Skip(where, f"{kind} without the fields it should have: {err}"))
        else:
            batch.records += found
        batch.skips += [Skip(f"{where} {part}", f"{kind} without the fields it should have: {reason}")
                        for part, reason in problems]
