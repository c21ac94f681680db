"""Bug trackers over REST: Bugzilla (``/rest/bug``) and JIRA (``/rest/api/2/search``), bugs with their comments.

Both page by offset in order of last change and checkpoint after each page: a rerun continues at the next
page, and a completed pass records the newest change time so the next run asks only for what changed since.
Credentials come from the environment only: ``BUGZILLA_API_KEY`` (sent as the ``X-BUGZILLA-API-KEY`` header),
``JIRA_TOKEN`` (a bearer token) or ``JIRA_USER`` + ``JIRA_TOKEN`` (basic auth, as Atlassian Cloud wants).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Iterator
from urllib.parse import urlparse

from ..records import Record, newest, parse_time, stamp
from .base import Batch, Connector, Skip, SourceError
from .http import HttpClient, NotFound


class _PagedTracker(Connector):
    """Offset paging in change order; subclasses fetch a page and turn it into records."""

    def __init__(self, base_url: str, since: datetime | str | None, page_size: int, client: HttpClient | None,
                 secret_hint: str):
        if not base_url.startswith(("http://", "https://")):
            raise SourceError(f"the tracker URL must start with http:// or https://, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.host = urlparse(self.base_url).netloc
        self.since = parse_time(since) if since else None
        self.page_size = page_size
        self.client = client or HttpClient()
        self.client.secret_hint = self.client.secret_hint or secret_hint

    def _page(self, offset: int, since: str | None) -> tuple[list[Record], list[Skip], int]:
        """Records and skips of one page, and how many items (bugs, issues) it had."""
        raise NotImplementedError

    def batches(self, checkpoint: dict | None) -> Iterator[Batch]:
        state = dict(checkpoint or {})
        since = state.get("since") or stamp(self.since)
        offset, high = state.get("offset", 0), state.get("high")
        while True:
            records, skips, n_items = self._page(offset, since)
            high = newest((r.updated_at for r in records if r.parent_id is None), high)  # bugs/issues, not comments
            offset += n_items
            done = n_items < self.page_size
            state = {"since": high or since, "offset": 0, "high": high} if done else \
                {"since": since, "offset": offset, "high": high}
            yield Batch(records=records, skips=skips, checkpoint=dict(state))
            if done:
                return


class BugzillaConnector(_PagedTracker):
    name = "bugzilla"

    def __init__(self, base_url: str, product: str | None = None, since: datetime | str | None = None,
                 page_size: int = 100, key_env: str = "BUGZILLA_API_KEY", client: HttpClient | None = None):
        super().__init__(base_url, since, page_size, client, f"set {key_env} to an API key of {base_url}")
        self.product = product
        key = os.environ.get(key_env)
        if key:
            self.client.headers["X-BUGZILLA-API-KEY"] = key

    @property
    def key(self) -> str:
        return f"bugzilla:{self.base_url}" + (f"/{self.product}" if self.product else "")

    def _json(self, url: str, params: dict) -> dict:
        data = self.client.json(url, params)
        if isinstance(data, dict) and data.get("error"):
            raise SourceError(f"Bugzilla error {data.get('code')}: {data.get('message')}", where=url)
        return data

    def _page(self, offset, since):
        params = {"order": "changeddate", "limit": self.page_size, "offset": offset, "include_fields": "_default"}
        if since:
            params["last_change_time"] = since
        if self.product:
            params["product"] = self.product
        bugs = self._json(f"{self.base_url}/rest/bug", params).get("bugs", [])
        records, skips = [], []
        comments = self._comments([b["id"] for b in bugs if "id" in b], skips)
        for bug in bugs:
            try:
                bug_id = bug["id"]
                thread = comments.get(str(bug_id), [])
                description = next((c for c in thread if c.get("count") == 0), thread[0] if thread else None)
                changed = parse_time(bug.get("last_change_time"))
                records.append(Record(
                    source="bugzilla", connector="bugzilla", project=bug.get("product") or self.host, kind="bug",
                    native_id=f"{self.host}/{bug_id}", url=f"{self.base_url}/show_bug.cgi?id={bug_id}",
                    title=bug.get("summary") or "", body=(description or {}).get("text") or "",
                    author=bug.get("creator"), created_at=parse_time(bug.get("creation_time")), updated_at=changed,
                    labels=[*bug.get("keywords", []), *([bug["component"]] if bug.get("component") else [])],
                    raw={"bug": bug, "comments": thread}))
                records += [self._comment(bug, c) for c in thread if c is not description]
            except (KeyError, TypeError, ValueError) as err:
                skips.append(Skip(f"{self.base_url}/rest/bug offset {offset}", f"not a Bugzilla bug: {err!r}"))
        return records, skips, len(bugs)

    def _comments(self, ids: list, skips: list[Skip]) -> dict:
        if not ids:
            return {}
        url = f"{self.base_url}/rest/bug/{ids[0]}/comment"
        try:
            data = self._json(url, {"ids": ids[1:]} if len(ids) > 1 else {})
        except NotFound as err:
            skips.append(Skip(url, f"comments not readable, bugs kept without them: {err.message}"))
            return {}
        return {str(k): v.get("comments", []) for k, v in (data.get("bugs") or {}).items()}

    def _comment(self, bug: dict, comment: dict) -> Record:
        when = parse_time(comment.get("creation_time"))
        return Record(
            source="bugzilla", connector="bugzilla", project=bug.get("product") or self.host, kind="comment",
            native_id=f"{self.host}/{bug['id']}/comment/{comment['id']}",
            url=f"{self.base_url}/show_bug.cgi?id={bug['id']}#c{comment.get('count', '')}",
            title=bug.get("summary") or "", body=comment.get("text") or comment.get("raw_text") or "",
            author=comment.get("creator") or comment.get("author"), created_at=when,
            updated_at=parse_time(comment.get("time")) or when, parent_id=f"{self.host}/{bug['id']}", raw=comment)


class JiraConnector(_PagedTracker):
    name = "jira"

    def __init__(self, base_url: str, project: str | None = None, since: datetime | str | None = None,
                 page_size: int = 50, token_env: str = "JIRA_TOKEN", user_env: str = "JIRA_USER",
                 client: HttpClient | None = None):
        super().__init__(base_url, since, page_size, client, f"set {token_env} (and {user_env} for Atlassian Cloud)")
        self.project = project
        token, user = os.environ.get(token_env), os.environ.get(user_env)
        if token and user:
            self.client.session.auth = (user, token)
        elif token:
            self.client.headers["Authorization"] = f"Bearer {token}"

    @property
    def key(self) -> str:
        return f"jira:{self.base_url}" + (f"/{self.project}" if self.project else "")

    def _page(self, offset, since):
        clauses = []
        if self.project:
            quoted = self.project.replace("\\", "\\\\").replace('"', '\\"')  # JQL has no bind parameters
            clauses.append(f'project = "{quoted}"')
        if since:
            clauses.append(f'updated >= "{parse_time(since).strftime("%Y/%m/%d %H:%M")}"')
        jql = " AND ".join(clauses) + " ORDER BY updated ASC"
        params = {"jql": jql.strip(), "startAt": offset, "maxResults": self.page_size, "fields": "*all"}
        data = self.client.json(f"{self.base_url}/rest/api/2/search", params)
        issues = data.get("issues", [])
        records, skips = [], []
        for issue in issues:
            try:
                fields = issue.get("fields") or {}
                key = issue["key"]
                updated = parse_time(fields.get("updated"))
                person = fields.get("reporter") or fields.get("creator") or {}
                thread = self._comments(issue, skips)
                records.append(Record(
                    source="jira", connector="jira", project=(fields.get("project") or {}).get("key") or self.host,
                    kind="issue", native_id=f"{self.host}/{key}", url=f"{self.base_url}/browse/{key}",
                    title=fields.get("summary") or "", body=fields.get("description") or "",
                    author=person.get("displayName") or person.get("name"),
                    created_at=parse_time(fields.get("created")), updated_at=updated,
                    labels=list(fields.get("labels") or []), raw={"issue": issue, "comments": thread}))
                records += [self._comment(issue, c) for c in thread]
            except (KeyError, TypeError, ValueError) as err:
                skips.append(Skip(f"{self.base_url}/rest/api/2/search startAt {offset}", f"not a JIRA issue: {err!r}"))
        return records, skips, len(issues)

    def _comments(self, issue: dict, skips: list[Skip]) -> list[dict]:
        url, found, start = f"{self.base_url}/rest/api/2/issue/{issue['id']}/comment", [], 0
        while True:
            try:
                page = self.client.json(url, {"startAt": start, "maxResults": self.page_size})
            except NotFound as err:
                skips.append(Skip(url, f"comments not readable, issue kept without them: {err.message}"))
                return found
            comments = page.get("comments", [])
            found += comments
            start += len(comments)
            if not comments or start >= page.get("total", 0):
                return found

    def _comment(self, issue: dict, comment: dict) -> Record:
        person = comment.get("author") or {}
        return Record(
            source="jira", connector="jira", project=((issue.get("fields") or {}).get("project") or {}).get("key")
            or self.host, kind="comment", native_id=f"{self.host}/{issue['key']}/comment/{comment['id']}",
            url=f"{self.base_url}/browse/{issue['key']}?focusedCommentId={comment['id']}",
            title=(issue.get("fields") or {}).get("summary") or "", body=comment.get("body") or "",
            author=person.get("displayName") or person.get("name"), created_at=parse_time(comment.get("created")),
            updated_at=parse_time(comment.get("updated")), parent_id=f"{self.host}/{issue['key']}", raw=comment)
