"""``transferlab vuln ...``: the dependency early-warning application on the command line (thin: parse, call, print)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from ..cli_common import err, friendly, out

vuln_app = typer.Typer(no_args_is_help=True, help="Dependency vulnerability early warning: ingest what projects "
                       "say in public, score it, map it to your dependencies, triage.")

DB = typer.Option("sqlite:///transferlab-vuln.db", "--db", envvar="TRANSFERLAB_VULN_DB",
                  help="SQLAlchemy URL of the store: sqlite:///file.db (default) or postgresql+psycopg://user@host/db; "
                       "a password belongs in the environment variable, not on the command line")


@vuln_app.command("ingest")
@friendly
def ingest_cmd(
    source: str = typer.Option(..., "--source", help="gharchive | github | bugzilla | jira | mbox | pipermail | "
                               "hyperkitty"),
    path: Optional[List[str]] = typer.Option(None, "--path", help="files or folders (gharchive hours, mail archives);"
                                             " repeatable"),
    url: Optional[str] = typer.Option(None, "--url", help="site for bugzilla/jira, API root for github "
                                      "(default https://api.github.com), or a GH Archive hour URL"),
    repo: Optional[str] = typer.Option(None, "--repo", help="github: owner/name"),
    repos: Optional[str] = typer.Option(None, "--repos", help="gharchive: keep only these repositories "
                                        "(comma-separated owner/name, or @file with one per line)"),
    project: Optional[str] = typer.Option(None, "--project", help="bugzilla product, JIRA project key, or the "
                                          "mailing list's name when its headers do not say"),
    since: Optional[str] = typer.Option(None, "--since", help="github/bugzilla/jira: only items changed since this "
                                        "date (ISO 8601); later runs continue from their checkpoint"),
    db: str = DB,
    restart: bool = typer.Option(False, "--restart", help="forget this source's checkpoint and read it all again "
                                 "(stored records are updated, never duplicated)"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
):
    """Read a source into the store: idempotent (a rerun duplicates nothing) and resumable (a checkpoint per
    source; after a kill, the rerun continues where it stopped).  Bad items are counted and listed, not lost."""
    from .ingest import ingest
    from .sources import make_connector
    from .store import Store

    repo_list = None
    if repos:
        text = Path(repos[1:]).read_text(encoding="utf-8") if repos.startswith("@") else repos.replace(",", "\n")
        repo_list = [r.strip() for r in text.splitlines() if r.strip() and not r.startswith("#")]
    connector = make_connector(source, path=path, url=url, repo=repo, project=project, since=since, repos=repo_list)
    store = Store.open(db)
    report = ingest(connector, store, progress=not as_json, restart=restart)
    if as_json:
        out.print_json(json.dumps(report.as_dict()))
    else:
        err.print(escape(report.summary()), highlight=False, soft_wrap=True)
        for example in report.skip_examples:
            err.print(escape(f"  skipped {example}"), highlight=False, soft_wrap=True)
        if report.skipped > len(report.skip_examples):
            err.print(escape(f"  ... all {report.skipped} skips are kept in the store's skips table"), highlight=False)
    if report.error:
        err.print(f"[bold red]error:[/] {escape(report.error)}\n  everything read before it is stored; rerun to "
                  "continue from the checkpoint", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
