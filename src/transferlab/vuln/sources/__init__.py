"""Connectors: each reads one kind of public project chatter into :class:`~transferlab.vuln.records.Record` s."""

from __future__ import annotations

from .base import Batch, Connector, Skip, SourceError

SOURCES = ("gharchive", "github", "bugzilla", "jira", "mbox", "pipermail", "hyperkitty")


def make_connector(source: str, path: list[str] | None = None, url: str | None = None, repo: str | None = None,
                   project: str | None = None, since: str | None = None, repos: list[str] | None = None,
                   allow_insecure_http: bool = False, max_record_bytes: int | None = None) -> Connector:
    """The connector for ``source`` from command-line style arguments, with a clear error for what is missing."""
    def need(value, flag: str):
        if not value:
            raise SourceError(f"--source {source} needs {flag}")
        return value

    if source == "gharchive":
        from .gharchive import GHArchiveConnector

        return GHArchiveConnector(need(path or ([url] if url else None), "--path (hour files or a folder) or --url"),
                                  repos=repos, max_record_bytes=max_record_bytes)
    if source in ("mbox", "pipermail", "hyperkitty"):
        from .mail import MailConnector

        return MailConnector(need(path, "--path (archive files or a folder)"), kind=source, project=project,
                             max_record_bytes=max_record_bytes)
    if source == "github":
        from .github import GitHubConnector

        return GitHubConnector(need(repo, "--repo owner/name"), since=since, allow_insecure_http=allow_insecure_http,
                               **({"base_url": url} if url else {}))
    if source == "bugzilla":
        from .trackers import BugzillaConnector

        return BugzillaConnector(need(url, "--url (the Bugzilla site)"), product=project, since=since,
                                 allow_insecure_http=allow_insecure_http)
    if source == "jira":
        from .trackers import JiraConnector

        return JiraConnector(need(url, "--url (the JIRA site)"), project=project, since=since,
                             allow_insecure_http=allow_insecure_http)
    raise SourceError(f"unknown source {source!r}; choose from {', '.join(SOURCES)}")


__all__ = ["Batch", "Connector", "SOURCES", "Skip", "SourceError", "make_connector"]
