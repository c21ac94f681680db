"""One scan: your manifests -> dependencies -> the projects that speak for them -> stored records -> cascade
scores (only for records this cascade version has not scored yet) -> known or new -> a ranked report.

``since`` keeps a daily run to what changed since a date.  Nothing is fetched here: ``transferlab vuln ingest``
fills the store first (the demo does both).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .advisories import AdvisoryIndex
from .cascade import Cascade
from .dependencies import Dependency, parse_manifest
from .disclosure import names_an_id
from .mapping import Mapping, RepositoryMapper, is_repository
from .store import Store

BATCH = 256


@dataclass
class Item:
    """One flagged record, as a report shows it."""

    record: dict
    stage1: float
    stage2: float
    evidence: dict
    advisory: str | None = None  # the advisory that already discloses it (names the record or one of its ids)
    verdict: str | None = None
    probable: tuple[str, float] | None = None  # (advisory id, pair score): its text repeats that advisory's

    @property
    def status(self) -> str:
        if self.advisory:
            return f"already disclosed ({self.advisory})"
        if self.probable:
            return f"probably already disclosed ({self.probable[0]}, score {self.probable[1]:.2f})"
        return "early warning"

    @property
    def disclosure(self) -> str:
        return ("already disclosed" if self.advisory else "probably already disclosed" if self.probable
                else "early warning")

    @property
    def rank_score(self) -> float:
        return self.stage1 * self.stage2


@dataclass
class DependencyResult:
    dependency: Dependency
    mapping: Mapping
    records: int = 0  # records of its projects in the store (after --since)
    items: list[Item] = field(default_factory=list)
    known: list[dict] = field(default_factory=list)  # advisories that affect the pinned version

    @property
    def early_warnings(self) -> list[Item]:
        return [i for i in self.items if not i.advisory and not i.probable]


@dataclass
class ScanResult:
    dependencies: list[DependencyResult]
    cascade: dict
    store: str
    since: str | None
    generated_at: str
    manifests: list[str]
    advisories: str | None
    scored_now: int = 0
    scoring_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    disclosure_check: str | None = None  # how "probably already disclosed" was decided, if it was

    @property
    def flagged(self) -> int:
        return sum(len(d.items) for d in self.dependencies)

    @property
    def early_warnings(self) -> int:
        return sum(len(d.early_warnings) for d in self.dependencies)

    def summary(self) -> str:
        mapped = sum(1 for d in self.dependencies if d.mapping.found)
        return (f"{len(self.dependencies)} dependencies ({mapped} mapped to a project), "
                f"{sum(d.records for d in self.dependencies)} records about them, {self.scored_now} scored now, "
                f"{self.flagged} flagged: {self.early_warnings} early warning(s), "
                f"{self.flagged - self.early_warnings} already disclosed"
                + (f" ({self.probably_disclosed} of them probably, by text)" if self.probably_disclosed else ""))

    @property
    def needs_attention(self) -> int:
        """What --fail-on-warning counts: early warnings and text-only matches (a fuzzy match never silences CI)."""
        return self.early_warnings + self.probably_disclosed

    @property
    def probably_disclosed(self) -> int:
        return sum(1 for d in self.dependencies for i in d.items if i.probable and not i.advisory)


def _mentions(text: str, words: list[str]) -> bool:
    return any(re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text, re.IGNORECASE) for w in words)


def linked(row: dict, mapping: Mapping) -> bool:
    """Does this record speak for the package?  Its repository's records always do; a shared target's (a list,
    a product) only when the text names the package (or one of the mapping's ``mentions``)."""
    if is_repository(row["project"]):
        return True
    words = mapping.mentions or [mapping.package]
    return _mentions(f"{row.get('title') or ''}\n{row.get('body') or ''}", words)


def score_pending(store: Store, cascade: Cascade, projects: list[str] | None, since: datetime | None,
                  progress: bool = True) -> tuple[int, float]:
    """Score the records this cascade version has not seen; returns (how many, seconds)."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    pending = store.unscored_ids(cascade.version, projects, since)  # ids only: rows are read a batch at a time
    if not pending:
        return 0, 0.0
    started, done = time.perf_counter(), 0
    with Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  disable=not progress, transient=True) as bar:
        task = bar.add_task("score", total=len(pending))
        for start in range(0, len(pending), BATCH):
            chunk = pending[start:start + BATCH]
            rows = store.records_by_id(chunk)
            done += store.write_scores(cascade.version, cascade.score_records([rows[i] for i in chunk]))
            bar.update(task, completed=done)
    return done, time.perf_counter() - started


def scan(manifests: list[str | Path], store: Store, cascade: Cascade, mapper: RepositoryMapper,
         advisories: AdvisoryIndex | None = None, since: datetime | None = None,
         progress: bool = True, disclosure=None) -> ScanResult:
    """``disclosure`` (a vuln.disclosure.DisclosureCheck) compares flagged records that name no CVE/GHSA id with
    their package's advisories, to tell "probably already disclosed" from "early warning"."""
    problems: list[str] = []
    deps: list[Dependency] = []
    for path in manifests:
        manifest = parse_manifest(path)
        problems += [f"{p.location}: {p.reason}" for p in manifest.problems]
        deps += manifest.dependencies
    seen, unique = set(), []
    for dep in deps:  # a package named in two manifests is one dependency (the first, pinned one wins)
        key = (dep.ecosystem, dep.name.lower(), dep.version)
        if key not in seen:
            seen.add(key)
            unique.append(dep)
    results = [DependencyResult(dep, mapper.map(dep)) for dep in unique]
    mapper.save()
    projects = sorted({p for r in results for p in r.mapping.projects})
    scored_now, seconds = score_pending(store, cascade, projects, since, progress) if projects else (0, 0.0)
    # Only flagged rows are read whole; the rest is counted (a shared target's records are read without payloads,
    # as its count depends on which of them name the package).
    rows = store.scored(cascade.version, projects, since, flagged_only=True) if projects else []
    by_project: dict[str, list[dict]] = {}
    for row in rows:
        by_project.setdefault(row["project"].lower(), []).append(row)
    counts = store.project_counts(projects, since) if projects else {}
    shared = sorted({p for p in projects if not is_repository(p)})
    shared_texts: dict[str, list[dict]] = {}
    for row in (store.texts(shared, since) if shared else []):
        shared_texts.setdefault(row["project"].lower(), []).append(row)
    for result in results:
        result.records = sum(counts.get(p.lower(), 0) if is_repository(p) else
                             sum(1 for r in shared_texts.get(p.lower(), []) if linked(r, result.mapping))
                             for p in result.mapping.projects)
        mine = [row for p in result.mapping.projects for row in by_project.get(p.lower(), [])
                if linked(row, result.mapping)]
        for row in mine:
            adv = advisories.match(row, [result.dependency]) if advisories else None
            item = Item(row, row["stage1"], row["stage2"], row["evidence"] or {}, adv.id if adv else None,
                        row.get("verdict"))
            if adv is None and advisories and disclosure is not None and not names_an_id(row):
                dep = result.dependency
                # an advisory whose fixed versions exclude the installed one cannot be what this record reports
                candidates = [a for a in advisories.for_package(dep.ecosystem, dep.name) if a.affects(dep) is not False]
                found = disclosure.best(row, candidates)
                item.probable = (found[0].id, round(found[1], 4)) if found else None
            result.items.append(item)
        result.items.sort(key=lambda i: (-i.rank_score, i.record["id"]))
        if advisories and result.dependency.version:
            for adv in advisories.for_package(result.dependency.ecosystem, result.dependency.name):
                if adv.affects(result.dependency):
                    result.known.append({"id": adv.id, "aliases": sorted(adv.aliases),
                                         "summary": adv.summary})
    results.sort(key=lambda r: (-len(r.early_warnings), -len(r.items), r.dependency.name.lower()))
    return ScanResult(results, {"version": cascade.version, "models": cascade.models}, store.url,
                      since.isoformat() if since else None,
                      datetime.now(timezone.utc).isoformat(timespec="seconds"), [str(m) for m in manifests],
                      advisories.origin if advisories else None, scored_now, round(seconds, 2), problems,
                      disclosure.source if disclosure is not None and advisories else None)
