"""Manifests and lockfiles -> (ecosystem, package, version): what the user depends on.

Ecosystem names follow OSV (PyPI, npm, Go, Maven, crates.io, RubyGems) so a dependency can be matched to an
advisory as it is.  A manifest that does not parse is a :class:`ManifestError` with the file, line and column;
a single entry that cannot be understood (a wrong shape, a bad requirement, an include cycle) is a counted
:class:`Problem` naming its line and place, and the rest of the file is kept.  Manifests come from repositories
the user did not write: nothing in one may raise anything else.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from transferlab.errors import TransferLabError

ECOSYSTEMS = ("PyPI", "npm", "Go", "Maven", "crates.io", "RubyGems")
MAX_MANIFEST_BYTES = 64 << 20  # far above any real lockfile; /dev/zero or a huge blob is refused, not read whole
MAX_INCLUDE_DEPTH = 32  # `-r` files nested deeper than this are a problem, not a RecursionError


class ManifestError(TransferLabError):
    """A manifest or lockfile that cannot be read at all (syntax error, unknown kind)."""


class ShapeError(ValueError):
    """A value of parsed JSON, TOML or XML that is not the type its place needs; the message names the place."""

    def __init__(self, place: str, reason: str):
        self.place, self.reason = place, reason
        super().__init__(f"{place}: {reason}")


_KINDS = {dict: "an object", list: "a list", str: "a string"}


def kind_name(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    return next((name for kind, name in _KINDS.items() if isinstance(value, kind)), type(value).__name__)


def expect(value, kind: type, place: str):
    """``value`` when it is a ``kind`` (dict, list or str), else a :class:`ShapeError` naming ``place``.

    Parsed JSON and TOML hold whatever shape their author chose; every reader of manifests, advisories and
    registry answers checks here, so a wrong shape becomes a reason with its place, never an AttributeError.
    """
    if isinstance(value, kind) and not isinstance(value, bool):
        return value
    raise ShapeError(place, f"expected {_KINDS[kind]}, found {kind_name(value)}")


def member(obj: dict, key: str, kind: type, place: str, default=None):
    """``obj[key]`` checked by :func:`expect`; ``default`` when it is missing or null."""
    value = obj.get(key)
    return default if value is None else expect(value, kind, f"{place}.{key}" if place else key)


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


class _Doc:
    """A parsed JSON/TOML manifest: look-ups where a wrong shape is a Problem (file:line, place) and an empty value."""

    def __init__(self, manifest: Manifest, path: Path, text: str):
        self.manifest, self.path, self.text = manifest, path, text

    def problem(self, place: str, reason: str, needle: str | None = None) -> None:
        line = _line_of(self.text, needle) if needle else 0
        self.manifest.problems.append(Problem(f"{self.path}:{line}" if line else str(self.path), f"{place}: {reason}"))

    def get(self, obj: dict, key: str, kind: type, place: str):
        try:
            return member(obj, key, kind, place, default=kind())
        except ShapeError as err:
            self.problem(err.place, err.reason, needle=key)
            return kind()


def _requirement(text: str, where: str, manifest: Manifest) -> None:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(text)
    except InvalidRequirement as err:
        manifest.problems.append(Problem(where, f"not a requirement: {err}"))
        return
    spec = str(req.specifier)
    manifest.dependencies.append(Dependency("PyPI", normalise_name("PyPI", req.name), _exact(spec), spec, where))


_INCLUDE = re.compile(r"(?:-[rc]\s*|--(?:requirement|constraint)(?:\s*=\s*|\s+))(?P<target>.*)")


def parse_requirements(path: Path, text: str, chain: tuple[Path, ...] = ()) -> Manifest:
    """``chain``: the files that included this one (for cycles: a file met again is a problem, not a recursion)."""
    manifest, chain = Manifest(str(path), "requirements.txt"), (*chain, path)
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
        include = _INCLUDE.fullmatch(entry)
        if include:
            _include(path.parent / include["target"].strip(), where, chain, manifest)
            continue
        if entry.startswith("-"):  # --index-url, -e ., --hash lines: options, not packages
            continue
        entry = re.sub(r"\s--hash=\S+", "", entry)
        _requirement(entry, where, manifest)
    return manifest


def _include(nested: Path, where: str, chain: tuple[Path, ...], manifest: Manifest) -> None:
    """A ``-r``/``-c`` file, read into ``manifest``; a cycle, a missing or unreadable file is a problem at ``where``."""
    shown = " -> ".join(os.path.relpath(p, chain[0].parent) for p in (*chain, nested))
    try:
        seen = nested.resolve() in {p.resolve() for p in chain}
    except (OSError, RuntimeError, ValueError) as err:  # a name too long, a symlink loop, a NUL in the name
        manifest.problems.append(Problem(where, f"included file {nested.name!r} cannot be read: {err}"))
        return
    if nested == chain[-1].parent:
        manifest.problems.append(Problem(where, "an include without a file name"))
    elif seen:
        manifest.problems.append(Problem(where, f"include cycle: {shown}"))
    elif len(chain) > MAX_INCLUDE_DEPTH:
        manifest.problems.append(Problem(where, f"includes nested deeper than {MAX_INCLUDE_DEPTH}: {shown}"))
    else:
        try:
            inner = parse_requirements(nested, _read(nested), chain)
        except ManifestError as err:
            manifest.problems.append(Problem(where, f"included file {shown.rsplit(' -> ', 1)[-1]}: {err.message}"))
            return
        manifest.dependencies += inner.dependencies
        manifest.problems += inner.problems


def _toml(path: Path, text: str) -> dict:
    try:
        return tomllib.loads(text)
    except (ValueError, RecursionError) as err:  # TOMLDecodeError, an integer of 5000 digits, arrays 1000 deep
        raise ManifestError(f"not valid TOML: {err}", where=str(path)) from None


def _requirements_list(doc: _Doc, value, place: str, key: str) -> None:
    if not isinstance(value, list):
        doc.problem(place, f"must be a list of strings, found {kind_name(value)}", needle=key)
        return
    for i, entry in enumerate(value):
        if isinstance(entry, str):
            _requirement(entry, f"{doc.path}:{_line_of(doc.text, entry)}", doc.manifest)
        elif not (place.startswith("dependency-groups") and isinstance(entry, dict)):  # {include-group = "x"}
            doc.problem(f"{place}[{i}]", f"must be a requirement string, found {kind_name(entry)}", needle=key)


def parse_pyproject(path: Path, text: str) -> Manifest:
    data, manifest = _toml(path, text), Manifest(str(path), "pyproject.toml")
    doc = _Doc(manifest, path, text)
    project = doc.get(data, "project", dict, "")
    if "dependencies" in project:
        _requirements_list(doc, project["dependencies"], "project.dependencies", "dependencies")
    for extra, value in doc.get(project, "optional-dependencies", dict, "project").items():
        _requirements_list(doc, value, f"project.optional-dependencies.{extra}", extra)
    for group, value in doc.get(data, "dependency-groups", dict, "").items():
        _requirements_list(doc, value, f"dependency-groups.{group}", group)
    poetry = doc.get(doc.get(data, "tool", dict, ""), "poetry", dict, "tool")
    tables = [("tool.poetry", "dependencies"), ("tool.poetry", "dev-dependencies")]
    tables = [(doc.get(poetry, key, dict, place), f"{place}.{key}") for place, key in tables]
    for group, value in doc.get(poetry, "group", dict, "tool.poetry").items():
        place = f"tool.poetry.group.{group}"
        if isinstance(value, dict):
            tables.append((doc.get(value, "dependencies", dict, place), f"{place}.dependencies"))
        else:
            doc.problem(place, f"expected a table, found {kind_name(value)}", needle=group)
    for table, place in tables:
        for name, spec in table.items():
            if name.lower() == "python":
                continue
            if isinstance(spec, dict):
                spec = spec.get("version", "")
            elif isinstance(spec, list):  # several constraints, each for its own Python or platform
                spec = ""
            if not isinstance(spec, str) or not name:
                doc.problem(f"{place}.{name}", f"expected a version string or table, found {kind_name(spec)}", name)
                continue
            manifest.dependencies.append(Dependency("PyPI", normalise_name("PyPI", name), _exact(spec) or (
                spec if re.fullmatch(r"\d[\w.]*", spec) else None), spec, f"{path}:{_line_of(text, name)}"))
    return manifest


def _lock_packages(path: Path, text: str, kind: str, ecosystem: str, table: str = "package") -> Manifest:
    data, manifest = _toml(path, text), Manifest(str(path), kind)
    doc = _Doc(manifest, path, text)
    for n, pkg in enumerate(doc.get(data, table, list, "")):
        place = f"[[{table}]] #{n + 1}"
        if not isinstance(pkg, dict):
            doc.problem(place, f"expected a table, found {kind_name(pkg)}")
            continue
        source = pkg.get("source")
        if kind == "uv.lock" and isinstance(source, dict) and ("editable" in source or "virtual" in source):
            continue  # the project itself, not a dependency
        name, version = pkg.get("name"), pkg.get("version")
        if not isinstance(name, str) or not name:
            doc.problem(place, f"an entry without a name (a non-empty string; found {kind_name(name)})")
        elif version is not None and not isinstance(version, str):
            doc.problem(f"{place}.version", f"expected a string, found {kind_name(version)}", needle=name)
        else:
            line = _line_of(text, f'name = "{name}"')
            manifest.dependencies.append(Dependency(ecosystem, normalise_name(ecosystem, name), version or None,
                                                    version or "", f"{path}:{line}"))
    return manifest


def _json(path: Path, text: str) -> dict:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ManifestError(f"not valid JSON: {err.msg}", where=f"{path}:{err.lineno}:{err.colno}") from None
    except (ValueError, RecursionError) as err:  # an integer of 5000 digits, arrays 100000 deep
        raise ManifestError(f"not valid JSON: {err}", where=str(path)) from None
    if not isinstance(data, dict):
        raise ManifestError(f"the top level must be an object, found {kind_name(data)}", where=str(path))
    return data


def parse_package_json(path: Path, text: str) -> Manifest:
    data, manifest = _json(path, text), Manifest(str(path), "package.json")
    doc = _Doc(manifest, path, text)
    for table in ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies"):
        for name, spec in doc.get(data, table, dict, "").items():
            if not name or not isinstance(spec, str):
                found = kind_name(spec) if name else "an empty name"
                doc.problem(f"{table}.{json.dumps(name)}", f"expected a name and a version string, found {found}",
                            json.dumps(name))
                continue
            exact = spec if re.fullmatch(r"\d+\.\d+\.\d+[\w.+-]*", spec) else None
            manifest.dependencies.append(Dependency("npm", name, exact, spec, f"{path}:{_line_of(text, name)}"))
    return manifest


def _lock_entry(doc: _Doc, place: str, key: str, info, name: str | None) -> Dependency | None:
    if not isinstance(info, dict):
        doc.problem(place, f"expected an object, found {kind_name(info)}", json.dumps(key))
        return None
    name = info.get("name") or name
    version = info.get("version")
    if not isinstance(name, str) or not name or not isinstance(version, (str, type(None))):
        doc.problem(place, "expected a string name and version", json.dumps(key))
        return None
    return Dependency("npm", name, version or None, version or "", f"{doc.path}:{_line_of(doc.text, json.dumps(key))}")


def parse_package_lock(path: Path, text: str) -> Manifest:
    data, manifest = _json(path, text), Manifest(str(path), "package-lock.json")
    doc = _Doc(manifest, path, text)
    packages = doc.get(data, "packages", dict, "")
    if packages:  # lockfile v2/v3: "node_modules/a/node_modules/b" -> b
        for key, info in packages.items():
            if not key or isinstance(info, dict) and info.get("link"):
                continue
            dep = _lock_entry(doc, f"packages.{json.dumps(key)}", key, info, key.rsplit("node_modules/", 1)[-1])
            if dep:
                manifest.dependencies.append(dep)
        return manifest
    # lockfile v1: nested "dependencies", walked with a stack (nesting is the author's choice, the stack is ours)
    stack = [("dependencies", doc.get(data, "dependencies", dict, ""))]
    while stack:
        place, deps = stack.pop()
        found = []
        for name, info in deps.items():
            dep = _lock_entry(doc, f"{place}.{json.dumps(name)}", name, info, name)
            if dep:
                manifest.dependencies.append(dep)
                found.append((f"{place}.{json.dumps(name)}.dependencies",
                              doc.get(info, "dependencies", dict, f"{place}.{json.dumps(name)}")))
        stack += reversed(found)
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


def _read(path: Path) -> str:
    """The text of a regular file of at most MAX_MANIFEST_BYTES, or a ManifestError saying why not."""
    try:
        if not path.is_file():
            raise ManifestError("not a file (a folder or a device)" if path.exists() else "no such file",
                                where=str(path))
        with path.open("rb") as f:
            data = f.read(MAX_MANIFEST_BYTES + 1)
    except OSError as err:
        raise ManifestError(f"cannot be read: {err.strerror or err}", where=str(path)) from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"larger than {MAX_MANIFEST_BYTES >> 20} MiB: not a manifest", where=str(path))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ManifestError(f"not UTF-8 text (byte {err.start})", where=str(path)) from None


def parse_manifest(path: str | Path) -> Manifest:
    """One manifest or lockfile, by its file name.  Exact duplicates (same file, same package) are merged."""
    path = Path(path)
    kind = kind_of(path)
    manifest = PARSERS[kind](path, _read(path))
    seen, unique = set(), []
    for dep in manifest.dependencies:
        if (dep.key, dep.version) not in seen:
            seen.add((dep.key, dep.version))
            unique.append(dep)
    manifest.dependencies = unique
    return manifest
