"""A scan's report, ranked per dependency: Markdown, HTML, CSV, JSON and SARIF (for CI systems).

The CSV keeps every column of the reference pipeline's triage sheet (Red Hat's ``probable_cves_*.csv``:
ecosystem, repo_name, event_type, status, url, security_model_flag, cve_model_flag, triage_is_cve,
triage_feedback_comments, id, number, api_url, created_at, updated_at, closed_at, creator_name, creator_url) and
adds the package, its version and manifest line, how the package was linked to the project, both scores, known
or new (with the advisory), the ids found, the evidence sentences and the model versions.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from .. import __version__
from . import inert
from .scan import DependencyResult, Item, ScanResult

FORMATS = {".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html", ".csv": "csv",
           ".json": "json", ".sarif": "sarif"}
REFERENCE_COLUMNS = ["ecosystem", "repo_name", "event_type", "status", "url", "security_model_flag",
                     "cve_model_flag", "triage_is_cve", "triage_feedback_comments", "id", "number", "api_url",
                     "created_at", "updated_at", "closed_at", "creator_name", "creator_url"]
EXTRA_COLUMNS = ["package", "version", "manifest_line", "mapping_provenance", "source", "kind", "title",
                 "stage1_score", "stage2_score", "disclosure", "advisory_id", "disclosure_score", "cve_ids", "ghsa_ids",
                 "cwe_ids",
                 "evidence", "verdict", "reviewer", "record_id", "cascade_version", "stage1_model", "stage2_model"]
EVENT_TYPES = {"issue": "IssuesEvent", "pull_request": "PullRequestEvent", "comment": "IssueCommentEvent",
               "commit": "PushEvent", "bug": "Bug", "mail": "Mail"}


def format_of(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        from ..errors import ConfigError

        raise ConfigError(f"cannot tell the report format of {path}", hint="end it in .md, .html, .csv, .json or "
                          ".sarif")
    return FORMATS[suffix]


def write(result: ScanResult, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = {"markdown": markdown, "html": to_html, "csv": to_csv, "json": to_json, "sarif": sarif}[format_of(path)]
    path.write_text(writer(result), encoding="utf-8", newline="")
    return path


# --------------------------------------------------------------------------------------------- shared pieces
def _raw(item: Item) -> dict:
    raw = item.record.get("raw")
    return raw if isinstance(raw, dict) else {}


def _status(item: Item) -> str:
    raw = _raw(item)
    payload = raw.get("payload") if isinstance(raw.get("payload"), dict) else {}
    return str(payload.get("action") or raw.get("state") or raw.get("status") or "")


def _number(url: str | None) -> str:
    m = re.search(r"/(?:issues|pull|pulls|show_bug\.cgi\?id=|browse/[A-Z]+-)(\d+)", url or "")
    return m.group(1) if m else ""


def _when(value) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else (value or "")


def _sentences(item: Item) -> list[str]:
    return [s["sentence"] for s in item.evidence.get("sentences", [])]


def _ids(item: Item, kind: str) -> list[str]:
    return list((item.record.get("refs") or {}).get(kind, []))


def row(result: ScanResult, dep: DependencyResult, item: Item) -> dict:
    rec, raw = item.record, _raw(item)
    issue = raw.get("payload", {}).get("issue") if isinstance(raw.get("payload"), dict) else None
    author = rec.get("author") or ""
    models = result.cascade["models"]
    verdict = item.verdict
    return {
        "ecosystem": dep.dependency.ecosystem, "repo_name": rec["project"],
        "event_type": EVENT_TYPES.get(rec["kind"], rec["kind"]), "status": _status(item), "url": rec.get("url") or "",
        "security_model_flag": 1, "cve_model_flag": 1,
        "triage_is_cve": "" if verdict is None else int(verdict == "vulnerability"),
        "triage_feedback_comments": rec.get("verdict_comment") or "", "id": rec["native_id"],
        "number": _number(rec.get("url")), "api_url": raw.get("url") or (issue or {}).get("url") or "",
        "created_at": _when(rec.get("created_at")), "updated_at": _when(rec.get("updated_at")),
        "closed_at": raw.get("closed_at") or (issue or {}).get("closed_at") or "", "creator_name": author,
        "creator_url": f"https://github.com/{author}" if rec["source"] == "github" and author else "",
        "package": dep.dependency.name, "version": dep.dependency.version or dep.dependency.spec,
        "manifest_line": dep.dependency.source, "mapping_provenance": dep.mapping.provenance,
        "source": rec["source"], "kind": rec["kind"], "title": rec.get("title") or "",
        "stage1_score": round(item.stage1, 4), "stage2_score": round(item.stage2, 4),
        "disclosure": item.disclosure, "advisory_id": item.advisory or (item.probable[0] if item.probable else ""),
        "disclosure_score": item.probable[1] if item.probable and not item.advisory else "",
        "cve_ids": " ".join(_ids(item, "cve")), "ghsa_ids": " ".join(_ids(item, "ghsa")),
        "cwe_ids": " ".join(_ids(item, "cwe")), "evidence": " | ".join(_sentences(item)),
        "verdict": verdict or "", "reviewer": rec.get("reviewer") or "", "record_id": rec["id"],
        "cascade_version": result.cascade["version"], "stage1_model": models["stage1"]["id"],
        "stage2_model": models["stage2"]["id"],
    }


def rows(result: ScanResult) -> list[dict]:
    return [row(result, dep, item) for dep in result.dependencies for item in dep.items]


def _header(result: ScanResult) -> list[tuple[str, str]]:
    models = result.cascade["models"]
    return [
        ("Generated", result.generated_at), ("Manifests", ", ".join(result.manifests)), ("Store", result.store),
        ("Since", result.since or "all records"),
        ("Cascade", f"{result.cascade['version']}: stage 1 {models['stage1']['id']} (threshold "
                    f"{models['stage1']['threshold']:.3f}, {models['stage1']['rule']}), stage 2 "
                    f"{models['stage2']['id']} (threshold {models['stage2']['threshold']:.3f}, "
                    f"{models['stage2']['rule']})"),
        ("Advisories", result.advisories or "none given: every flagged item is listed as an early warning"),
        *([("Probably disclosed", f"records naming no CVE/GHSA id compared with their package's advisories by "
                                  f"{result.disclosure_check}")] if result.disclosure_check else []),
        ("Summary", result.summary()),
    ]


# --------------------------------------------------------------------------------------------- Markdown
# Every value below went through inert: md_text/html_text escape it for their reader, md_link/html_link link only
# http(s) URLs.  Our own words are literals; nothing a stranger wrote is interpolated any other way.
def markdown(result: ScanResult) -> str:
    t = inert.md_text
    lines = ["# Dependency early-warning report", ""]
    lines += [f"- **{k}**: {t(v)}" for k, v in _header(result)]
    if result.problems:
        lines += ["", f"**{len(result.problems)} manifest problem(s)**:"] + [f"- {t(p)}" for p in result.problems]
    for dep in result.dependencies:
        d = dep.dependency
        lines += ["", f"## {t(d.ecosystem)} {t(d.name)} {t(d.version or d.spec or '')}".rstrip(), ""]
        if dep.mapping.found:
            lines.append(f"Projects: {t(', '.join(dep.mapping.projects))} ({t(dep.mapping.provenance)}); "
                         f"{dep.records} record(s) read; {len(dep.items)} flagged, {len(dep.early_warnings)} "
                         "early warning(s).")
        else:
            lines.append(f"Not mapped to a project: {t(dep.mapping.reason or 'unknown')}. Add it to a mapping "
                         "file (`--mapping`).")
        for k in dep.known:
            lines.append(f"- Known advisory affecting this version: **{t(k['id'])}** "
                         f"{t(' '.join(k['aliases']))} {t(k['summary'])}")
        if dep.items:
            lines += ["", "| # | status | stage 1 | stage 2 | record | ids | evidence |", "|---|---|---|---|---|---|---|"]
            for n, item in enumerate(dep.items, 1):
                rec = item.record
                link = inert.md_link(rec.get("title") or rec["native_id"], rec.get("url"))
                ids = " ".join(_ids(item, "cve") + _ids(item, "ghsa") + _ids(item, "cwe"))
                evidence = "<br>".join(t(s[:200]) for s in _sentences(item))
                verdict = f" (triaged: {t(item.verdict)})" if item.verdict else ""
                lines.append(f"| {n} | {t(item.status)}{verdict} | {item.stage1:.3f} | {item.stage2:.3f} | "
                             f"{link} ({t(rec['kind'])}, {t(rec['project'])}, id {t(rec['id'])}) | {t(ids)} | "
                             f"{evidence} |")
    lines += ["", "Scores are probabilities after temperature calibration; a record is flagged when it passes both "
              "stage thresholds, which were chosen on validation data for a target recall. Evidence: the sentences "
              "whose removal lowers the stage-2 score most. Triage with `transferlab vuln triage`.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- HTML
# No script may run even if an escape were missed: the policy allows only the inline style sheet below, no
# scripts, images, frames, forms, plugins or <base>.  It must come before any content to apply.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'"


def to_html(result: ScanResult) -> str:
    e = inert.html_text
    parts = [f'<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" '
             f'content="{CSP}"><meta name="referrer" content="no-referrer">'
             "<title>Dependency early-warning report</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;"
             "width:100%}td,th{border:1px solid #ccc;padding:4px;vertical-align:top;font-size:90%}"
             ".early{background:#fde2e2}.known{background:#eef}</style></head><body>",
             "<h1>Dependency early-warning report</h1><dl>"]
    parts += [f"<dt><b>{e(k)}</b></dt><dd>{e(v)}</dd>" for k, v in _header(result)]
    parts.append("</dl>")
    if result.problems:
        parts.append(f"<p><b>{len(result.problems)} manifest problem(s)</b>: "
                     f"{'<br>'.join(e(p) for p in result.problems)}</p>")
    for dep in result.dependencies:
        d = dep.dependency
        parts.append(f"<h2>{e(d.ecosystem)} {e(d.name)} {e(d.version or d.spec or '')}</h2>")
        if dep.mapping.found:
            parts.append(f"<p>Projects: {e(', '.join(dep.mapping.projects))} ({e(dep.mapping.provenance)}); "
                         f"{dep.records} record(s); {len(dep.items)} flagged.</p>")
        else:
            parts.append(f"<p>Not mapped to a project: {e(dep.mapping.reason or 'unknown')}.</p>")
        for k in dep.known:
            parts.append(f"<p>Known advisory affecting this version: <b>{e(k['id'])}</b> {e(k['summary'])}</p>")
        if not dep.items:
            continue
        parts.append("<table><tr><th>#</th><th>status</th><th>stage 1</th><th>stage 2</th><th>record</th>"
                     "<th>ids</th><th>evidence</th></tr>")
        for n, item in enumerate(dep.items, 1):
            rec = item.record
            link = inert.html_link(rec.get("title") or rec["native_id"], rec.get("url"))
            ids = e(" ".join(_ids(item, "cve") + _ids(item, "ghsa") + _ids(item, "cwe")))
            ev = "<br>".join(e(s[:300]) for s in _sentences(item))
            cls = "known" if item.advisory or item.probable else "early"
            parts.append(f"<tr class='{cls}'><td>{n}</td><td>{e(item.status)}</td><td>{item.stage1:.3f}</td>"
                         f"<td>{item.stage2:.3f}</td><td>{link}<br><small>{e(rec['kind'])}, {e(rec['project'])}, "
                         f"id {e(rec['id'])}</small></td><td>{ids}</td><td>{ev}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------- CSV, JSON
def to_csv(result: ScanResult) -> str:
    """The triage sheet; text that a spreadsheet would run as a formula is made text (inert.csv_cell), in every
    column, since any of them can hold what a stranger wrote."""
    buffer = io.StringIO(newline="")
    # Every cell quoted: a spreadsheet that splits on ';' (many locales) cannot start a new cell, and so a
    # formula, in the middle of a title.
    writer = csv.DictWriter(buffer, fieldnames=REFERENCE_COLUMNS + EXTRA_COLUMNS, quoting=csv.QUOTE_ALL)
    writer.writeheader()
    writer.writerows({k: inert.csv_cell(v) for k, v in r.items()} for r in rows(result))
    return buffer.getvalue()


def as_dict(result: ScanResult) -> dict:
    deps = []
    for dep in result.dependencies:
        d = dep.dependency
        deps.append({
            "ecosystem": d.ecosystem, "name": d.name, "version": d.version, "spec": d.spec, "manifest_line": d.source,
            "mapping": {"projects": dep.mapping.projects, "provenance": dep.mapping.provenance,
                        "reason": dep.mapping.reason, "mentions": dep.mapping.mentions},
            "records": dep.records, "known_advisories": dep.known,
            "flagged": [{**row(result, dep, item), "evidence": item.evidence} for item in dep.items],
        })
    return {"generated_at": result.generated_at, "tool": f"transferlab {__version__}", "manifests": result.manifests,
            "store": result.store, "since": result.since, "cascade": result.cascade, "advisories": result.advisories,
            "summary": result.summary(), "scored_now": result.scored_now, "scoring_seconds": result.scoring_seconds,
            "problems": result.problems, "dependencies": deps}


def to_json(result: ScanResult) -> str:
    return json.dumps(as_dict(result), indent=2, default=str)


# --------------------------------------------------------------------------------------------- SARIF 2.1.0
RULES = [
    {"id": "TL001", "name": "EarlyWarning",
     "shortDescription": {"text": "A dependency's project discusses a probable vulnerability with no advisory yet"},
     "help": {"text": "Read the linked record; triage it with `transferlab vuln triage`."},
     "defaultConfiguration": {"level": "warning"}},
    {"id": "TL002", "name": "AlreadyDisclosed",
     "shortDescription": {"text": "A flagged record about a dependency matches a published advisory"},
     "help": {"text": "Upgrade past the advisory's fixed version."},
     "defaultConfiguration": {"level": "note"}},
    {"id": "TL003", "name": "ProbablyDisclosed",
     "shortDescription": {"text": "A flagged record names no advisory, but its text is close to one that affects "
                                  "this version"},
     "help": {"text": "Check that the record is about that advisory (the match is by text, not by id); if not, "
                      "treat it as an early warning."},
     "defaultConfiguration": {"level": "warning"}},
]


def _location(dep: DependencyResult) -> dict:
    where = dep.dependency.source or ""
    m = re.match(r"(.+?):(\d+)(?::\d+)?$", where)
    path, line = (m.group(1), int(m.group(2))) if m else (where or "manifest", 1)
    file = Path(path)
    if file.is_absolute():  # CI systems want a path relative to the checkout; else a file:// URI
        try:
            uri = file.relative_to(Path.cwd()).as_posix()
        except ValueError:
            uri = file.as_uri()
    else:
        uri = file.as_posix()
    return {"physicalLocation": {"artifactLocation": {"uri": uri}, "region": {"startLine": max(line, 1)}}}


def sarif(result: ScanResult) -> str:
    results = []
    for dep in result.dependencies:
        for item in dep.items:
            rec = item.record
            rule = "TL002" if item.advisory else "TL003" if item.probable else "TL001"
            text = (f"{dep.dependency.name} {dep.dependency.version or ''}: {item.status}: "
                    f"{rec.get('title') or rec['native_id']} ({rec.get('url') or rec['project']}; "
                    f"stage 1 {item.stage1:.2f}, stage 2 {item.stage2:.2f})")
            results.append({  # message.text, never message.markdown: viewers render the latter
                "ruleId": rule, "ruleIndex": ["TL001", "TL002", "TL003"].index(rule),
                "level": "note" if item.advisory else "warning", "message": {"text": inert.sarif_text(text)},
                "locations": [_location(dep)],
                "partialFingerprints": {"recordIdentity/v1": f"{rec['source']}:{rec['native_id']}"},
                "properties": {"url": rec.get("url"), "stage1": item.stage1, "stage2": item.stage2,
                               "advisory": item.advisory, "probably": list(item.probable) if item.probable else None,
                               "ids": rec.get("refs"), "evidence": _sentences(item),
                               "cascade_version": result.cascade["version"]},
            })
    doc = {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
           "runs": [{"tool": {"driver": {"name": "TransferLab vuln", "version": __version__,
                                         "informationUri": "https://github.com/transferlab/transferlab",
                                         "rules": RULES}},
                     "results": results,
                     "properties": {"cascade": result.cascade, "summary": result.summary()}}]}
    return json.dumps(doc, indent=2, default=str)
