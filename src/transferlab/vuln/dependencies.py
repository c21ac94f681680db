"""Manifests and lockfiles -> (ecosystem, package, version): what the user depends on.

Ecosystem names follow OSV (PyPI, npm, Go, Maven, crates.io, RubyGems) so a dependency can be matched to an
advisory as it is.  A manifest that does not parse is a :class:`ManifestError` with the file, line and column;
a single entry that cannot be understood is a counted :class:`Problem`, and the rest of the file is kept.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from transferlab.errors import TransferLabError

ECOSYSTEMS = ("PyPI", "npm", "Go", "Maven", "crates.io", "RubyGems")


class ManifestError(TransferLabError):
    """A manifest or lockfile that cannot be read at all (syntax error, unknown kind)."""


@dataclass(frozen=True)
class Dependency:
    ecosystem: str
    name: str
    version: str | None  # an exact version from a lockfile or a pin; None when only a range is known
    spec: str = ""  # the constraint as written (">=2.0,<3"), for the report
    source: str = ""  # file:line it came from

    @property
    def key(self) -> str:
        return f"{self.ecosystem}:{self.name}"


@dataclass
class Problem:
    location: str
    reason: str


@dataclass
class Manifest:
    path: str
    kind: str
    dependencies: list[Dependency] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def normalise_name(ecosystem: str, name: str) -> str:
    """The form a registry compares names in: PEP 503 for PyPI (``Django_Foo`` = ``django-foo``), else as given."""
    return re.sub(r"[-_.]+", "-", name).lower() if ecosystem == "PyPI" else name


def _exact(spec: str) -> str | None:
    m = re.fullmatch(r"\s*===?\s*([^\s,;*]+)\s*", spec or "")
    return m.group(1) if m else None


def _line_of(text: str, needle: str) -> int:
    index = text.find(needle)
    return text.count("\n", 0, index) + 1 if index >= 0 else 0


def _requirement(text: str, where: str, manifest: Manifest) -> None:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(text)
    except InvalidRequirement as err:
        manifest.problems.append(Problem(where, f"not a requirement: {err}"))
        return
    spec = str(req.specifier)
    manifest.dependencies.append(Dependency("PyPI", normalise_name("PyPI", req.name), _exact(spec), spec, where))


def parse_requirements(path: Path, text: str) -> Manifest:
    manifest = Manifest(str(path), "requirements.txt")
    logical, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not logical:
            start = number
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        entry, logical = logical.strip(), ""
        if not entry:
            continue
        where = f"{path}:{start}"
        if entry.startswith(("-r", "--requirement", "-c", "--constraint")):
            target = entry.split(maxsplit=1)[1] if " " in entry else entry[2:]
            nested = (path.parent / target.strip())
            if nested.exists() and nested.resolve() != path.resolve():
                inner = parse_requirements(nested, nested.read_text(encoding="utf-8"))
                manifest.dependencies += inner.dependencies
                manifest.problems += inner.problems
            else:
                manifest.problems.append(Problem(where, f"included file {target.strip()} not found"))
            continue
        if entry.startswith("-"):  # --index-url, -e ., --hash lines: options, not packages
            continue
        entry = re.sub(r"\s--hash=\S+", "", entry)
        _requirement(entry, where, manifest)
    return manifest


def _toml(path: Path, text: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ManifestError(f"not valid TOML: {err}", where=str(path)) from None


def parse_pyproject(path: Path, text: str) -> Manifest:
    data, manifest = _toml(path, text), Manifest(str(path), "pyproject.toml")
    project = data.get("project", {})
    entries = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        entries += extra
    for group in data.get("dependency-groups", {}).values():
        entries += [e for e in group if isinstance(e, str)]
    for entry in entries:
        _requirement(entry, f"{path}:{_line_of(text, entry)}", manifest)
    poetry = data.get("tool", {}).get("poetry", {})
    tables = [poetry.get("dependencies", {}), poetry.get("dev-dependencies", {})]
    tables += [g.get("dependencies", {}) for g in poetry.get("group", {}).values()]
    for table in tables:
        for name, spec in table.items():
            if name.lower() == "python":
                continue
            version = spec.get("version", "") if isinstance(spec, dict) else str(spec)
            manifest.dependencies.append(Dependency("PyPI", normalise_name("PyPI", name), _exact(version) or (
                version if re.fullmatch(r"\d[\w.]*", version or "") else None), version,
                f"{path}:{_line_of(text, name)}"))
    return manifest


def _lock_packages(path: Path, text: str, kind: str, ecosystem: str, table: str = "package") -> Manifest:
    data, manifest = _toml(path, text), Manifest(str(path), kind)
    for n, pkg in enumerate(data.get(table, [])):
        if not isinstance(pkg, dict) or "name" not in pkg:
            manifest.problems.append(Problem(f"{path} [[{table}]] #{n + 1}", "an entry without a name"))
            continue
        source = pkg.get("source")
        if kind == "uv.lock" and isinstance(source, dict) and ("editable" in source or "virtual" in source):
            continue  # the project itself, not a dependency
        name = normalise_name(ecosystem, pkg["name"])
        line = _line_of(text, f'name = "{pkg["name"]}"')
        manifest.dependencies.append(Dependency(ecosystem, name, pkg.get("version"), pkg.get("version", ""),
                                                f"{path}:{line}"))
    return manifest


def _json(path: Path, text: str) -> dict:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ManifestError(f"not valid JSON: {err.msg}", where=f"{path}:{err.lineno}:{err.colno}") from None


def parse_package_json(path: Path, text: str) -> Manifest:
    data, manifest = _json(path, text), Manifest(str(path), "package.json")
    for table in ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies"):
        for name, spec in (data.get(table) or {}).items():
            exact = spec if re.fullmatch(r"\d+\.\d+\.\d+[\w.+-]*", str(spec)) else None
            manifest.dependencies.append(Dependency("npm", name, exact, str(spec), f"{path}:{_line_of(text, name)}"))
    return manifest


def parse_package_lock(path: Path, text: str) -> Manifest:
    data, manifest = _json(path, text), Manifest(str(path), "package-lock.json")
    packages = data.get("packages")
    if packages:  # lockfile v2/v3: "node_modules/a/node_modules/b" -> b
        for key, info in packages.items():
            if not key or info.get("link"):
                continue
            name = info.get("name") or key.rsplit("node_modules/", 1)[-1]
            manifest.dependencies.append(Dependency("npm", name, info.get("version"), info.get("version", ""),
                                                    f"{path}:{_line_of(text, json.dumps(key))}"))
        return manifest

    def walk(deps: dict) -> None:  # lockfile v1: nested "dependencies"
        for name, info in deps.items():
            manifest.dependencies.append(Dependency("npm", name, info.get("version"), info.get("version", ""),
                                                    f"{path}:{_line_of(text, json.dumps(name))}"))
            walk(info.get("dependencies") or {})

    walk(data.get("dependencies") or {})
    return manifest


GO_DIRECTIVES = ("module", "go", "toolchain", "godebug", "require", "replace", "exclude", "retract", "tool", "ignore")


def parse_go_mod(path: Path, text: str) -> Manifest:
    manifest, block = Manifest(str(path), "go.mod"), None
    for number, raw in enumerate(text.splitlines(), start=1):
        line, where = raw.split("//", 1)[0].strip(), f"{path}:{number}"
        if not line:
            continue
        words = line.split()
        if block is None:
            if words[0] not in GO_DIRECTIVES:
                raise ManifestError(f"unknown go.mod directive {words[0]!r}", where=f"{where}:1")
            if words[-1] == "(":
                block = words[0]
                continue
            if words[0] != "require":
                continue
            words = words[1:]
        elif line == ")":
            block = None
            continue
        elif block != "require":
            continue
        if len(words) < 2:
            manifest.problems.append(Problem(where, f"a requirement needs a module and a version: {line!r}"))
            continue
        manifest.dependencies.append(Dependency("Go", words[0], words[1].lstrip("v"), words[1], where))
    if block:
        raise ManifestError(f"a '{block} (' block is never closed", where=str(path))
    return manifest


def parse_pom(path: Path, text: str) -> Manifest:
    from xml.etree.ElementTree import ParseError

    from defusedxml import DefusedXmlException, ElementTree

    try:
        root = ElementTree.fromstring(text)
    except ParseError as err:
        line, col = err.position
        raise ManifestError(f"not well-formed XML: {err}", where=f"{path}:{line}:{col}") from None
    except DefusedXmlException as err:
        raise ManifestError(f"refused: the XML declares entities or a DTD ({err})", where=str(path)) from None
    ns = {"m": root.tag[1:].split("}")[0]} if root.tag.startswith("{") else {}
    q = (lambda t: f"m:{t}") if ns else (lambda t: t)
    props = {}
    for prop in root.findall(f"{q('properties')}/*", ns):
        props[prop.tag.split("}")[-1]] = (prop.text or "").strip()
    props["project.version"] = (root.findtext(q("version"), "", ns) or "").strip()

    def resolve(value: str) -> str:
        return re.sub(r"\$\{([^}]+)\}", lambda m: props.get(m.group(1), m.group(0)), value or "")

    manifest = Manifest(str(path), "pom.xml")
    for dep in root.iter(f"{{{ns['m']}}}dependency" if ns else "dependency"):
        group = (dep.findtext(q("groupId"), "", ns) or "").strip()
        artifact = (dep.findtext(q("artifactId"), "", ns) or "").strip()
        version = resolve((dep.findtext(q("version"), "", ns) or "").strip())
        if not group or not artifact:
            manifest.problems.append(Problem(str(path), "a <dependency> without groupId or artifactId"))
            continue
        exact = version if version and not re.search(r"[\[\](),$]", version) else None
        manifest.dependencies.append(Dependency("Maven", f"{group}:{artifact}", exact, version,
                                                f"{path}:{_line_of(text, f'<artifactId>{artifact}</artifactId>')}"))
    return manifest


def parse_gemfile_lock(path: Path, text: str) -> Manifest:
    manifest, section = Manifest(str(path), "Gemfile.lock"), None
    for number, line in enumerate(text.splitlines(), start=1):
        if line and not line.startswith(" "):
            section = line.strip()
            continue
        if section in ("GEM", "GIT", "PATH"):
            m = re.fullmatch(r" {4}([^\s(]+) \(([^)]+)\)", line)  # exactly 4 spaces: a gem, 6: its dependency
            if m:
                version = m.group(2).split("-")[0] if re.search(r"-(x86|arm|java|universal)", m.group(2)) else m.group(2)
                manifest.dependencies.append(Dependency("RubyGems", m.group(1), version, m.group(2), f"{path}:{number}"))
    if not any(line.strip() in ("GEM", "GIT", "PATH") for line in text.splitlines()):
        raise ManifestError("no GEM, GIT or PATH section: not a Gemfile.lock", where=str(path))
    return manifest


PARSERS = {
    "requirements.txt": parse_requirements, "pyproject.toml": parse_pyproject,
    "poetry.lock": lambda p, t: _lock_packages(p, t, "poetry.lock", "PyPI"),
    "uv.lock": lambda p, t: _lock_packages(p, t, "uv.lock", "PyPI"),
    "Cargo.lock": lambda p, t: _lock_packages(p, t, "Cargo.lock", "crates.io"),
    "package.json": parse_package_json, "package-lock.json": parse_package_lock, "go.mod": parse_go_mod,
    "pom.xml": parse_pom, "Gemfile.lock": parse_gemfile_lock,
}


def kind_of(path: Path) -> str:
    name = path.name
    if name in PARSERS:
        return name
    if re.fullmatch(r"(.*[-_.])?requirements([-_.].*)?\.(txt|in)", name):
        return "requirements.txt"
    raise ManifestError(f"unknown manifest kind {name!r}", where=str(path),
                        hint="supported: " + ", ".join(PARSERS) + " (and *requirements*.txt)")


def parse_manifest(path: str | Path) -> Manifest:
    """One manifest or lockfile, by its file name.  Exact duplicates (same file, same package) are merged."""
    path = Path(path)
    kind = kind_of(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError("no such file", where=str(path)) from None
    except UnicodeDecodeError as err:
        raise ManifestError(f"not UTF-8 text (byte {err.start})", where=str(path)) from None
    manifest = PARSERS[kind](path, text)
    seen, unique = set(), []
    for dep in manifest.dependencies:
        if (dep.key, dep.version) not in seen:
            seen.add((dep.key, dep.version))
            unique.append(dep)
    manifest.dependencies = unique
    return manifest
