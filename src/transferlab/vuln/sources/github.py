"""GitHub REST API: issues and pull requests, their comments, and commits of one repository since a date.

Three streams, each paged with ``Link: rel=next`` and checkpointed after every page: ``issues`` (pull requests
are issues there, told apart by their ``pull_request`` key), ``comments`` (the repository-wide issue-comment
list, sorted by update) and ``commits``.  When a stream is complete, its next run asks only for what changed
since the newest item seen, with the page's ETag: an unchanged answer (HTTP 304) costs no rate limit.
The token comes from ``GITHUB_TOKEN`` (or the variable named by ``token_env``); without one, GitHub allows
60 requests an hour, and the client waits for the limit to reset.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Iterator

from ..records import Record, newest, parse_time, stamp
from .base import Batch, Connector, SourceError, each_item
from .fields import integer, loads, need, obj, sha, text, texts
from .http import HttpClient, origin, shown

STREAMS = ("issues", "comments", "commits")


def _author(item: dict, *keys: str) -> str | None:
    person = obj(item)
    for key in keys[:-1]:
        person = obj(person.get(key))
    return text(person.get(keys[-1]))


def issue_record(repo: str, item, connector: str = "github-api", raw: dict | None = None,
                 pull_request: bool = False) -> Record:
    """An issue or pull request as the REST API and GH Archive payloads both give it (``raw``: the whole event).
    Raises :class:`~.fields.BadItem` when it has no number; any other field of the wrong type reads as absent."""
    item = need(obj(item) or None, "issue or pull request object")
    number = need(integer(item.get("number")), "issue number")
    return Record(
        source="github", connector=connector, project=repo,
        kind="pull_request" if pull_request or "pull_request" in item else "issue",
        native_id=f"{repo}#{number}",
        url=text(item.get("html_url")), title=text(item.get("title")) or "", body=text(item.get("body")) or "",
        author=_author(item, "user", "login"), created_at=parse_time(item.get("created_at")),
        updated_at=parse_time(item.get("updated_at")), labels=texts(item.get("labels"), "name"),
        raw=item if raw is None else raw)


def comment_record(repo: str, item, connector: str = "github-api", parent: dict | None = None,
                   raw: dict | None = None) -> Record:
    """A comment; its issue comes from ``parent`` (GH Archive carries it, and its title gives the comment context)
    or else from the comment's ``issue_url`` (REST)."""
    item = need(obj(item) or None, "comment object")
    comment_id = need(integer(item.get("id")), "comment id")
    parent = obj(parent)
    tail = (text(item.get("issue_url")) or "").rstrip("/").rsplit("/", 1)[-1]
    number = integer(parent.get("number")) if parent else integer(tail)
    return Record(
        source="github", connector=connector, project=repo, kind="comment", native_id=f"{repo}#comment-{comment_id}",
        url=text(item.get("html_url")), title=text(parent.get("title")) or "", body=text(item.get("body")) or "",
        author=_author(item, "user", "login"), created_at=parse_time(item.get("created_at")),
        updated_at=parse_time(item.get("updated_at")), parent_id=f"{repo}#{number}" if number is not None else None,
        raw=item if raw is None else raw)


def commit_record(repo: str, item, connector: str = "github-api") -> Record:
    item = need(obj(item) or None, "commit object")
    commit_sha = need(sha(item.get("sha")), "commit sha")
    commit = obj(item.get("commit"))
    title, _, body = (text(commit.get("message")) or "").partition("\n")
    written = parse_time(obj(commit.get("author")).get("date"))
    when_committed = parse_time(obj(commit.get("committer")).get("date")) or written
    return Record(
        source="github", connector=connector, project=repo, kind="commit", native_id=f"{repo}@{commit_sha}",
        url=text(item.get("html_url")) or f"https://github.com/{repo}/commit/{commit_sha}", title=title.strip(),
        body=body.strip(), author=_author(commit, "author", "name"),
        created_at=written or when_committed, updated_at=when_committed, raw=item)


class GitHubConnector(Connector):
    name = "github"

    def __init__(self, repo: str, since: datetime | str | None = None, base_url: str = "https://api.github.com",
                 token_env: str = "GITHUB_TOKEN", streams: tuple[str, ...] = STREAMS, per_page: int = 100,
                 client: HttpClient | None = None, allow_insecure_http: bool = False):
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise SourceError(f"a GitHub repository is owner/name, not {repo!r}")
        unknown = set(streams) - set(STREAMS)
        if unknown:
            raise SourceError(f"unknown GitHub stream(s) {sorted(unknown)}; choose from {', '.join(STREAMS)}")
        self.repo, self.base_url, self.streams, self.per_page = repo, base_url.rstrip("/"), streams, per_page
        self.since = parse_time(since) if since else None
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        token = os.environ.get(token_env)
        self.client = client or HttpClient()
        self.client.secret_hint = self.client.secret_hint or f"set {token_env} to a token that can read {repo}"
        self.client.headers.update(headers)
        self.client.bind_credential(self.base_url, headers={"Authorization": f"Bearer {token}"} if token else None,
                                    allow_insecure_http=allow_insecure_http)

    @property
    def key(self) -> str:
        return f"github:{self.base_url}/{self.repo}"

    def _first_page(self, stream: str, since: str | None) -> tuple[str, dict]:
        root = f"{self.base_url}/repos/{self.repo}"
        params: dict = {"per_page": self.per_page}
        if stream == "issues":
            url, params = f"{root}/issues", {**params, "state": "all", "sort": "updated", "direction": "asc"}
        elif stream == "comments":
            url, params = f"{root}/issues/comments", {**params, "sort": "updated", "direction": "asc"}
        else:
            url = f"{root}/commits"
        if since:
            params["since"] = since
        return url, params

    def batches(self, checkpoint: dict | None) -> Iterator[Batch]:
        state = {k: dict(v) for k, v in (checkpoint or {}).items()}
        for stream in self.streams:
            yield from self._stream(stream, state)

    def _stream(self, stream: str, state: dict) -> Iterator[Batch]:
        mine = state.setdefault(stream, {})
        since = mine.get("since") or stamp(self.since)
        resuming = bool(mine.get("next"))
        url, params = (mine["next"], None) if resuming else self._first_page(stream, since)
        stored = mine.get("etag") or {}
        etag = stored.get("value") if not resuming and stored.get("since") == since else None
        high = mine.get("high")
        while url:
            if origin(url) != origin(self.base_url):  # stop rather than page on without the token, or with it
                raise SourceError(f"the next page is on another origin ({shown(url)}), not {shown(self.base_url)}",
                                  hint="give --url as the API root the server names in its Link headers")
            response = self.client.get(url, params=params, etag=etag)
            if response.status_code == 304:  # nothing changed since the last run asked the same question
                yield Batch(unchanged=1, checkpoint={k: dict(v) for k, v in state.items()})
                return
            if params is not None and response.headers.get("ETag"):
                mine["etag"] = {"since": since, "value": response.headers["ETag"]}
            try:
                items = loads(response.content)
            except (ValueError, RecursionError):
                raise SourceError("the answer is not JSON", where=response.url) from None
            if not isinstance(items, list):
                raise SourceError(f"expected a list of {stream}, got {type(items).__name__}: {str(items)[:120]!r}",
                                  where=response.url)
            batch = Batch()
            make = {"issues": issue_record, "comments": comment_record, "commits": commit_record}[stream]
            batch.records = each_item(items, response.url, f"GitHub {stream[:-1]}", lambda i: make(self.repo, i),
                                      batch.skips)
            high = newest((r.updated_at for r in batch.records), high)
            url, params, etag = response.links.get("next", {}).get("url"), None, None
            if url:
                mine.update(next=url, high=high)
            else:  # done: the next run asks only for what changed since the newest item seen
                mine.update(next=None, since=high or since, high=high)
            batch.checkpoint = {k: dict(v) for k, v in state.items()}
            yield batch
