"""Known or new: the advisories already published, from an OSV export directory or the OSV API.

A flagged record is *already disclosed* when an advisory for one of its packages names one of the record's ids
(CVE, GHSA, as id or alias) or links to the record itself (its URL among the advisory's references: the issue,
pull request or fix commit).  The rest are the early warnings.  Which versions an advisory affects is read from
its ``versions`` list and ``ECOSYSTEM``/``SEMVER`` ranges; where that cannot be decided the answer is ``None``,
not a guess.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from transferlab.errors import TransferLabError

from .dependencies import Dependency, normalise_name

OSV_API = "https://api.osv.dev"


class AdvisoryError(TransferLabError):
    """The OSV export cannot be read."""


@dataclass
class Advisory:
    id: str
    aliases: list[str]
    summary: str
    packages: list[tuple[str, str]]  # (ecosystem, name)
    references: list[str]
    affected: list[dict] = field(default_factory=list, repr=False)
    published: str | None = None

    @classmethod
    def from_osv(cls, data: dict) -> "Advisory":
        affected = data.get("affected") or []
        return cls(id=data["id"], aliases=list(data.get("aliases") or []),
                   summary=data.get("summary") or (data.get("details") or "")[:200],
                   packages=[(a["package"]["ecosystem"], normalise_name(a["package"]["ecosystem"], a["package"]["name"]))
                             for a in affected if a.get("package")],
                   references=[r.get("url", "") for r in data.get("references") or []], affected=affected,
                   published=data.get("published"))

    @property
    def ids(self) -> set[str]:
        return {i.upper() for i in [self.id, *self.aliases]}

    def affects(self, dep: Dependency) -> bool | None:
        """Whether ``dep``'s version is affected: True, False, or None when it cannot be told."""
        if dep.version is None:
            return None
        verdicts = []
        for entry in self.affected:
            pkg = entry.get("package") or {}
            if (pkg.get("ecosystem"), normalise_name(pkg.get("ecosystem", ""), pkg.get("name", ""))) != (dep.ecosystem,
                                                                                                  normalise_name(dep.ecosystem, dep.name)):
                continue
            if dep.version in (entry.get("versions") or []):
                return True
            for rng in entry.get("ranges") or []:
                if rng.get("type") in ("ECOSYSTEM", "SEMVER"):
                    verdicts.append(_in_range(dep.version, rng.get("events") or []))
        if True in verdicts:
            return True
        if verdicts and all(v is False for v in verdicts):
            return False
        return None


def _key(version: str):
    from packaging.version import InvalidVersion, Version

    try:
        return (0, Version(version))
    except InvalidVersion:
        parts = re.findall(r"\d+", version)
        return (1, tuple(int(p) for p in parts)) if parts else None


def _in_range(version: str, events: list[dict]) -> bool | None:
    """OSV range semantics: sorted events; introduced opens, fixed / last_affected close."""
    v = _key(version)
    if v is None:
        return None
    affected = False
    for event in events:
        (kind, at), = event.items()
        bound = (0, _key("0")[1]) if at == "0" else _key(at)
        if bound is None or bound[0] != v[0]:
            return None
        if kind == "introduced" and v >= bound:
            affected = True
        elif kind == "fixed" and v >= bound:
            affected = False
        elif kind == "last_affected" and v > bound:
            affected = False
    return affected


class AdvisoryIndex:
    """Advisories by package, searchable by id and by referenced URL."""

    def __init__(self, advisories: list[Advisory], origin: str):
        self.origin = origin
        self.by_package: dict[tuple[str, str], list[Advisory]] = {}
        for adv in advisories:
            for pkg in set(adv.packages):
                self.by_package.setdefault(pkg, []).append(adv)
        self.count = len(advisories)
        self.problems: list[str] = []  # entries of an export that are not OSV records: counted, reported

    @classmethod
    def from_directory(cls, path: str | Path) -> "AdvisoryIndex":
        """An OSV export: a folder of ``*.json`` files (recursively) and/or OSV's per-ecosystem ``all.zip``."""
        path = Path(path)
        if not path.exists():
            raise AdvisoryError("no such folder", where=str(path), hint="download an export from "
                                "https://osv-vulnerabilities.storage.googleapis.com/<ECOSYSTEM>/all.zip")
        advisories, bad = [], []
        files = [path] if path.is_file() else sorted(path.rglob("*"))
        for f in files:
            if f.suffix == ".json":
                cls._add(f.read_bytes(), str(f), advisories, bad)
            elif f.suffix == ".zip":
                with zipfile.ZipFile(f) as z:
                    for name in z.namelist():
                        if name.endswith(".json"):
                            cls._add(z.read(name), f"{f}!{name}", advisories, bad)
        index = cls(advisories, f"OSV export {path}")
        index.problems += bad
        return index

    @staticmethod
    def _add(data: bytes, where: str, out: list, bad: list) -> None:
        try:
            out.append(Advisory.from_osv(json.loads(data)))
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
            bad.append(f"{where}: not an OSV record ({type(err).__name__}: {err})")

    @classmethod
    def from_api(cls, dependencies: list[Dependency], client=None, base_url: str = OSV_API) -> "AdvisoryIndex":
        """Ask the OSV API about each package (online only)."""
        from .sources.http import HttpClient

        client = client or HttpClient(max_retries=2, timeout=30)
        advisories, seen = [], set()
        for dep in dependencies:
            body = {"package": {"ecosystem": dep.ecosystem, "name": dep.name}}
            for vuln in client.json(f"{base_url}/v1/query", method="POST", body=body).get("vulns", []):
                if vuln["id"] not in seen:
                    seen.add(vuln["id"])
                    advisories.append(Advisory.from_osv(vuln))
        return cls(advisories, f"OSV API {base_url}")

    def for_package(self, ecosystem: str, name: str) -> list[Advisory]:
        return self.by_package.get((ecosystem, normalise_name(ecosystem, name)), [])

    def match(self, record: dict, dependencies: list[Dependency]) -> Advisory | None:
        """The advisory that already discloses what ``record`` (a stored record row) is about, if any."""
        refs = record.get("refs") or {}
        ids = {i.upper() for i in [*refs.get("cve", []), *refs.get("ghsa", [])]}
        urls = {u.rstrip("/") for u in [record.get("url") or "", *refs.get("urls", [])] if u}
        for dep in dependencies:
            for adv in self.for_package(dep.ecosystem, dep.name):
                if ids & adv.ids or urls & {r.rstrip("/") for r in adv.references}:
                    return adv
        return None
