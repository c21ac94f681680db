"""Known or new: the advisories already published, from an OSV export directory or the OSV API.

A flagged record is *already disclosed* when an advisory for one of its packages names one of the record's ids
(CVE, GHSA, as id or alias) or links to the record itself (its URL among the advisory's references: the issue,
pull request or fix commit).  The rest are the early warnings.  Which versions an advisory affects is read from
its ``versions`` list and ``ECOSYSTEM``/``SEMVER`` ranges; where that cannot be decided the answer is ``None``,
not a guess.

Exports and API answers are checked as they are read: a record of the wrong shape (a list, a reference that is a
string, an event with two keys) or larger than ``MAX_RECORD_BYTES`` is a counted skip naming its file, zip entry
and place; the rest still loads.
"""

from __future__ import annotations

import json
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from transferlab.errors import TransferLabError

from .dependencies import Dependency, ShapeError, expect, member, normalise_name

OSV_API = "https://api.osv.dev"
MAX_RECORD_BYTES = 16 << 20  # the largest real OSV records are a few MiB (long version lists); a bigger one is hostile
EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")


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
    details: str = field(default="", repr=False)

    @classmethod
    def from_osv(cls, data) -> "Advisory":
        """An OSV record; a :class:`ShapeError` naming the place when a field this module reads has the wrong shape
        (the checks follow https://ossf.github.io/osv-schema/ for those fields and ignore the rest)."""
        data = expect(data, dict, "the record")
        ident = expect(data.get("id"), str, "id")
        aliases = member(data, "aliases", list, "", [])
        for i, alias in enumerate(aliases):
            expect(alias, str, f"aliases[{i}]")
        affected = member(data, "affected", list, "", [])
        packages = []
        for i, entry in enumerate(affected):
            place = f"affected[{i}]"
            expect(entry, dict, place)
            package = member(entry, "package", dict, place)
            if package is not None:
                ecosystem = expect(package.get("ecosystem"), str, f"{place}.package.ecosystem")
                packages.append((ecosystem, normalise_name(ecosystem, expect(package.get("name"), str,
                                                                              f"{place}.package.name"))))
            for j, version in enumerate(member(entry, "versions", list, place, [])):
                expect(version, str, f"{place}.versions[{j}]")
            for j, rng in enumerate(member(entry, "ranges", list, place, [])):
                expect(rng, dict, f"{place}.ranges[{j}]")
                for k, event in enumerate(member(rng, "events", list, f"{place}.ranges[{j}]", [])):
                    _check_event(event, f"{place}.ranges[{j}].events[{k}]")
        references = []
        for i, ref in enumerate(member(data, "references", list, "", [])):
            expect(ref, dict, f"references[{i}]")
            references.append(member(ref, "url", str, f"references[{i}]", ""))
        summary = member(data, "summary", str, "", "") or member(data, "details", str, "", "")[:200]
        return cls(id=ident, aliases=list(aliases), summary=summary, packages=packages, references=references,
                   affected=affected, published=member(data, "published", str, ""),
                   details=member(data, "details", str, "", ""))

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
        pass
    except ValueError:  # a number of more than 4300 digits: Python refuses to convert it, and so does packaging
        return None
    parts = re.findall(r"\d+", version)
    return (1, tuple(int(p) for p in parts)) if parts and max(map(len, parts)) <= 4000 else None


def _check_event(event, place: str) -> None:
    """OSV: an event is an object with exactly one of EVENT_KINDS, its value a string.  Two keys are refused,
    not read as two events: their order, which decides the range, would be a guess."""
    expect(event, dict, place)
    if len(event) != 1 or next(iter(event)) not in EVENT_KINDS:
        raise ShapeError(place, f"an event has exactly one key, one of {', '.join(EVENT_KINDS)}; "
                                f"found {sorted(event)}")
    (kind, at), = event.items()
    expect(at, str, f"{place}.{kind}")


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
    def from_directory(cls, path: str | Path, max_bytes: int = MAX_RECORD_BYTES) -> "AdvisoryIndex":
        """An OSV export: a folder of ``*.json`` files (recursively) and/or OSV's per-ecosystem ``all.zip``.

        A record over ``max_bytes`` is skipped unread; a zip that is not one is an :class:`AdvisoryError` (a
        silently missing ecosystem would turn its known advisories into early warnings)."""
        path = Path(path)
        if not path.exists():
            raise AdvisoryError("no such folder", where=str(path), hint="download an export from "
                                "https://osv-vulnerabilities.storage.googleapis.com/<ECOSYSTEM>/all.zip")
        advisories, bad = [], []
        files = [path] if path.is_file() else sorted(path.rglob("*"))
        for f in files:
            if f.suffix == ".json" and f.is_file():
                try:
                    size = f.stat().st_size
                    with f.open("rb") as handle:
                        data = None if size > max_bytes else handle.read(max_bytes + 1)
                except OSError as err:
                    bad.append(f"{f}: cannot be read ({err.strerror or err})")
                    continue
                cls._add(data, size, max_bytes, str(f), advisories, bad)
            elif f.suffix == ".zip" and f.is_file():
                cls._add_zip(f, max_bytes, advisories, bad)
        index = cls(advisories, f"OSV export {path}")
        index.problems += bad
        return index

    @classmethod
    def _add_zip(cls, path: Path, max_bytes: int, out: list, bad: list) -> None:
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as err:
            raise AdvisoryError(f"not a zip archive ({err})", where=str(path),
                                hint="download it again; a partial download is not a zip") from None
        with archive:
            for info in archive.infolist():
                if not info.filename.endswith(".json") or info.is_dir():
                    continue
                where = f"{path}!{info.filename}"
                data = None
                if info.file_size <= max_bytes:
                    try:  # a bounded read: the declared size is the archive's word, not a fact
                        with archive.open(info) as entry:
                            data = entry.read(max_bytes + 1)
                    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError,
                            OSError) as err:  # bad CRC, corrupt stream, encrypted, unknown compression
                        bad.append(f"{where}: cannot be unpacked ({err})")
                        continue
                cls._add(data, info.file_size, max_bytes, where, out, bad)

    @staticmethod
    def _add(data: bytes | None, size: int, max_bytes: int, where: str, out: list, bad: list) -> None:
        if data is None or len(data) > max_bytes:
            bad.append(f"{where}: larger than {max_bytes / (1 << 20):g} MiB ({max(size, len(data or b''))} bytes), "
                       "skipped unread")
            return
        try:
            out.append(Advisory.from_osv(json.loads(data)))
        except (ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError, ShapeError, 5000 digits
            bad.append(f"{where}: not an OSV record ({err})")

    @classmethod
    def from_api(cls, dependencies: list[Dependency], client=None, base_url: str = OSV_API) -> "AdvisoryIndex":
        """Ask the OSV API about each package (online only); an answer or vulnerability of the wrong shape is a
        counted problem naming the package."""
        from .sources.http import HttpClient

        client = client or HttpClient(max_retries=2, timeout=30)
        advisories, seen, bad = [], set(), []
        for dep in dependencies:
            body = {"package": {"ecosystem": dep.ecosystem, "name": dep.name}}
            where = f"OSV API answer for {dep.key}"
            try:
                vulns = member(expect(client.json(f"{base_url}/v1/query", method="POST", body=body), dict,
                                      "the answer"), "vulns", list, "", [])
            except ShapeError as err:
                bad.append(f"{where}: {err}")
                continue
            for i, vuln in enumerate(vulns):
                try:
                    advisory = Advisory.from_osv(vuln)
                except ShapeError as err:
                    bad.append(f"{where}: vulns[{i}]: not an OSV record ({err})")
                    continue
                if advisory.id not in seen:
                    seen.add(advisory.id)
                    advisories.append(advisory)
        index = cls(advisories, f"OSV API {base_url}")
        index.problems += bad
        return index

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
