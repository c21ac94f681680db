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
from .base import Batch, Connector, Skip, SourceError, each_item
from .fields import integer, items, jira_key, need, obj, text, texts
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

    def _object(self, url: str, params: dict) -> dict:
        """An answer that must be a JSON object: anything else is the server's fault, said with its URL."""
        data = self.client.json(url, params)
        if not isinstance(data, dict):
            raise SourceError(f"expected a JSON object, got a {type(data).__name__}: {str(data)[:120]!r}", where=url)
        return data

    def _listed(self, data: dict, key: str, url: str) -> list:
        found = data.get(key, [])
        if not isinstance(found, list):
            raise SourceError(f"expected a list under {key!r}, got a {type(found).__name__}", where=url)
        return found

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
                 page_size: int = 100, key_env: str = "BUGZILLA_API_KEY", client: HttpClient | None = None,
                 allow_insecure_http: bool = False):
        super().__init__(base_url, since, page_size, client, f"set {key_env} to an API key of {base_url}")
        self.product = product
        key = os.environ.get(key_env)
        self.client.bind_credential(self.base_url, headers={"X-BUGZILLA-API-KEY": key} if key else None,
                                    allow_insecure_http=allow_insecure_http)

    @property
    def key(self) -> str:
        return f"bugzilla:{self.base_url}" + (f"/{self.product}" if self.product else "")

    def _json(self, url: str, params: dict) -> dict:
        data = self._object(url, params)
        if data.get("error"):
            raise SourceError(f"Bugzilla error {data.get('code')}: {data.get('message')}", where=url)
        return data

    def _page(self, offset, since):
        params = {"order": "changeddate", "limit": self.page_size, "offset": offset, "include_fields": "_default"}
        if since:
            params["last_change_time"] = since
        if self.product:
            params["product"] = self.product
        url = f"{self.base_url}/rest/bug"
        bugs = self._listed(self._json(url, params), "bugs", url)
        skips: list[Skip] = []
        # Only integer ids go into the comment URL: an id is never pasted into a path unchecked.
        ids = [i for i in (integer(obj(b).get("id")) for b in bugs) if i is not None]
        comments = self._comments(ids, skips)
        records = each_item(bugs, f"{url} offset {offset}", "Bugzilla bug",
                             lambda bug: self._bug(bug, comments, skips), skips)
        return records, skips, len(bugs)

    def _bug(self, bug, comments: dict, skips: list[Skip]) -> list[Record]:
        bug = need(obj(bug) or None, "bug object")
        bug_id = need(integer(bug.get("id")), "bug id")
        thread = [c for c in comments.get(bug_id, []) if isinstance(c, dict)]
        description = next((c for c in thread if c.get("count") == 0), thread[0] if thread else None)
        component = text(bug.get("component"))
        record = Record(
            source="bugzilla", connector="bugzilla", project=text(bug.get("product")) or self.host, kind="bug",
            native_id=f"{self.host}/{bug_id}", url=f"{self.base_url}/show_bug.cgi?id={bug_id}",
            title=text(bug.get("summary")) or "", body=text(obj(description).get("text")) or "",
            author=text(bug.get("creator")), created_at=parse_time(bug.get("creation_time")),
            updated_at=parse_time(bug.get("last_change_time")),
            labels=[*texts(bug.get("keywords")), *([component] if component else [])],
            raw={"bug": bug, "comments": comments.get(bug_id, [])})
        rest = [c for c in comments.get(bug_id, []) if c is not description]
        where = f"{self.base_url}/rest/bug/{bug_id}/comment"
        return [record, *each_item(rest, where, "Bugzilla comment", lambda c: self._comment(bug, bug_id, c), skips)]

    def _comments(self, ids: list[int], skips: list[Skip]) -> dict[int, list]:
        if not ids:
            return {}
        url = f"{self.base_url}/rest/bug/{ids[0]}/comment"
        try:
            data = self._json(url, {"ids": ids[1:]} if len(ids) > 1 else {})
        except NotFound as err:
            skips.append(Skip(url, f"comments not readable, bugs kept without them: {err.message}"))
            return {}
        found = {integer(k): items(obj(v).get("comments")) for k, v in obj(data.get("bugs")).items()}
        return {k: v for k, v in found.items() if k is not None}

    def _comment(self, bug: dict, bug_id: int, comment) -> Record:
        comment = need(obj(comment) or None, "comment object")
        comment_id = need(integer(comment.get("id")), "comment id")
        count = integer(comment.get("count"))
        created = parse_time(comment.get("creation_time"))
        return Record(
            source="bugzilla", connector="bugzilla", project=text(bug.get("product")) or self.host, kind="comment",
            native_id=f"{self.host}/{bug_id}/comment/{comment_id}",
            url=f"{self.base_url}/show_bug.cgi?id={bug_id}#c{'' if count is None else count}",
            title=text(bug.get("summary")) or "", body=text(comment.get("text")) or text(comment.get("raw_text")) or "",
            author=text(comment.get("creator")) or text(comment.get("author")), created_at=created,
            updated_at=parse_time(comment.get("time")) or created, parent_id=f"{self.host}/{bug_id}", raw=comment)


class JiraConnector(_PagedTracker):
    name = "jira"

    def __init__(self, base_url: str, project: str | None = None, since: datetime | str | None = None,
                 page_size: int = 50, token_env: str = "JIRA_TOKEN", user_env: str = "JIRA_USER",
                 client: HttpClient | None = None, allow_insecure_http: bool = False):
        super().__init__(base_url, since, page_size, client, f"set {token_env} (and {user_env} for Atlassian Cloud)")
        self.project = project
        token, user = os.environ.get(token_env), os.environ.get(user_env)
        self.client.bind_credential(self.base_url, auth=(user, token) if token and user else None,
                                    headers={"Authorization": f"Bearer {token}"} if token and not user else None,
                                    allow_insecure_http=allow_insecure_http)

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
        url = f"{self.base_url}/rest/api/2/search"
        issues = self._listed(self._object(url, params), "issues", url)
        skips: list[Skip] = []
        records = each_item(issues, f"{url} startAt {offset}", "JIRA issue", lambda i: self._issue(i, skips), skips)
        return records, skips, len(issues)

    def _issue(self, issue, skips: list[Skip]) -> list[Record]:
        issue = need(obj(issue) or None, "issue object")
        key = need(jira_key(issue.get("key")), "issue key (PROJECT-123)")
        issue_id = need(integer(issue.get("id")), "issue id")  # only an integer goes into the comment URL
        fields = obj(issue.get("fields"))
        person = obj(fields.get("reporter")) or obj(fields.get("creator"))
        url, thread = self._comments(issue_id, skips)
        record = Record(
            source="jira", connector="jira", project=text(obj(fields.get("project")).get("key")) or self.host,
            kind="issue", native_id=f"{self.host}/{key}", url=f"{self.base_url}/browse/{key}",
            title=text(fields.get("summary")) or "", body=text(fields.get("description")) or "",
            author=text(person.get("displayName")) or text(person.get("name")),
            created_at=parse_time(fields.get("created")), updated_at=parse_time(fields.get("updated")),
            labels=texts(fields.get("labels")), raw={"issue": issue, "comments": thread})
        return [record, *each_item(thread, url, "JIRA comment", lambda c: self._comment(issue, key, c), skips)]

    def _comments(self, issue_id: int, skips: list[Skip]) -> tuple[str, list]:
        url, found, start = f"{self.base_url}/rest/api/2/issue/{issue_id}/comment", [], 0
        while True:
            try:
                page = self.client.json(url, {"startAt": start, "maxResults": self.page_size})
            except NotFound as err:
                skips.append(Skip(url, f"comments not readable, issue kept without them: {err.message}"))
                return url, found
            comments = obj(page).get("comments")
            if not isinstance(comments, list):
                skips.append(Skip(url, f"startAt {start} is not a page of JIRA comments (a {type(page).__name__}); "
                                       "issue kept without the rest"))
                return url, found
            found += comments
            total, answered = integer(obj(page).get("total")), integer(obj(page).get("startAt"))
            # A server that ignores startAt would answer the same page for ever: stop at the first repeat.
            if not comments or total is None or (answered is not None and answered != start):
                return url, found
            start += len(comments)
            if start >= total:
                return url, found

    def _comment(self, issue: dict, key: str, comment) -> Record:
        comment = need(obj(comment) or None, "comment object")
        comment_id = need(integer(comment.get("id")), "comment id")
        fields = obj(issue.get("fields"))
        person = obj(comment.get("author"))
        return Record(
            source="jira", connector="jira", project=text(obj(fields.get("project")).get("key")) or self.host,
            kind="comment", native_id=f"{self.host}/{key}/comment/{comment_id}",
            url=f"{self.base_url}/browse/{key}?focusedCommentId={comment_id}",
            title=text(fields.get("summary")) or "", body=text(comment.get("body")) or "",
            author=text(person.get("displayName")) or text(person.get("name")), created_at=parse_time(comment.get("created")),
            updated_at=parse_time(comment.get("updated")), parent_id=f"{self.host}/{key}", raw=comment)
