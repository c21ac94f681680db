"""Which project's chatter concerns a dependency: package -> source repository, with where that came from.

Order of trust: the user's mapping file always wins; then the cache of earlier lookups; then the package
registries when online (PyPI JSON ``project_urls``, the npm registry's ``repository``, Go module paths, the
Maven POM's ``<scm>``, crates.io, RubyGems).  Every answer records its provenance.  A registry that cannot
be reached, or answers XML with entities or JSON of an unexpected shape, is a reason in the result, never a
crash; "not found" answers are cached, network failures and odd answers are not.

A target is a record ``project`` as the store holds it: ``owner/name`` for GitHub, a list id for mail, a
product or project key for Bugzilla and JIRA.  The user file (TOML) may map one package to several::

    [PyPI]
    django = "https://github.com/django/django"
    [npm]
    lodash = ["lodash/lodash", "lodash-users@googlegroups.com"]
    [PyPI."qemu.qmp"]
    projects = ["qemu-project/python-qemu-qmp", "oss-security.lists.openwall.com"]
    mentions = ["qemu"]

The table form adds ``mentions``: a record that reaches the package through a shared target (a mailing list,
a tracker product: anything that is not an ``owner/name`` repository) is linked only when its text names one
of them, as a word; a repository's own records are always linked.
"""

from __future__ import annotations

import json
import os
import re
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

from transferlab.errors import TransferLabError

from .dependencies import ECOSYSTEMS, Dependency, ShapeError, expect, member, normalise_name

CACHE_DAYS = 30
_REPO_URL = re.compile(r"(?:github\.com|gitlab\.com|bitbucket\.org)[/:]([\w.-]+)/([\w.-]+?)(?:\.git)?(?:[/#?].*)?$",
                       re.IGNORECASE)
_GO_VANITY = {"golang.org/x/": "golang/", "google.golang.org/grpc": "grpc/grpc-go",
              "google.golang.org/protobuf": "protocolbuffers/protobuf-go", "gopkg.in/yaml.v": "go-yaml/yaml"}
REGISTRIES = {"pypi": "https://pypi.org", "npm": "https://registry.npmjs.org",
              "maven": "https://repo1.maven.org/maven2", "crates": "https://crates.io",
              "rubygems": "https://rubygems.org"}


class MappingFileError(TransferLabError):
    """The user's mapping file is not valid TOML or not shaped as [Ecosystem] package = target(s)."""


@dataclass
class Mapping:
    ecosystem: str
    package: str
    projects: list[str] = field(default_factory=list)
    provenance: str = ""
    reason: str | None = None  # why nothing was found, when nothing was
    mentions: list[str] = field(default_factory=list)  # words a shared target's record must contain

    @property
    def found(self) -> bool:
        return bool(self.projects)


def project_of(url_or_slug: str) -> str:
    """``https://github.com/Owner/Repo.git`` -> ``Owner/Repo``; anything else is kept as given (a list, a key)."""
    text = url_or_slug.strip()
    text = re.sub(r"^(git\+|scm:git:|github:)", "", text)
    m = _REPO_URL.search(text)
    if m:
        return f"{m.group(1)}/{m.group(2)}"
    return text


def _first_repo(urls) -> str | None:
    for url in urls:
        if isinstance(url, str) and _REPO_URL.search(re.sub(r"^(git\+|scm:git:)", "", url)):
            return project_of(url)
    return None


def _key(ecosystem: str, package: str) -> str:
    """Mapping-file sections are matched case-insensitively ([pypi] = [PyPI]), names as their registry compares."""
    canonical = next((e for e in ECOSYSTEMS if e.lower() == ecosystem.lower()), ecosystem)
    return f"{canonical.lower()}:{normalise_name(canonical, package)}"


def is_repository(project: str) -> bool:
    """``owner/name`` (a repository) rather than a list id, a product or a project key."""
    return bool(re.fullmatch(r"[\w.-]+/[\w.-]+", project))


def read_user_file(path: str | Path) -> dict[str, dict]:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MappingFileError("no such file", where=str(path)) from None
    except tomllib.TOMLDecodeError as err:
        raise MappingFileError(f"not valid TOML: {err}", where=str(path)) from None
    out: dict[str, dict] = {}
    for ecosystem, table in data.items():
        if not isinstance(table, dict):
            raise MappingFileError(f"[{ecosystem}] must be a table of package = target(s)", where=str(path))
        for package, target in table.items():
            mentions: list = []
            if isinstance(target, dict):
                unknown = set(target) - {"projects", "mentions"}
                if unknown or "projects" not in target:
                    raise MappingFileError(f"{ecosystem}.{package}: a table has `projects` (and optionally "
                                           f"`mentions`); found {sorted(target)}", where=str(path))
                mentions = target.get("mentions", [])
                target = target["projects"]
            targets = [target] if isinstance(target, str) else target
            if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
                raise MappingFileError(f"{ecosystem}.{package}: a target is a string or a list of strings",
                                       where=str(path))
            if not isinstance(mentions, list) or not all(isinstance(m, str) and m.strip() for m in mentions):
                raise MappingFileError(f"{ecosystem}.{package}: mentions must be a list of words", where=str(path))
            out[_key(ecosystem, package)] = {"projects": [project_of(t) for t in targets], "mentions": mentions}
    return out


class RepositoryMapper:
    def __init__(self, user_file: str | Path | None = None, cache_file: str | Path | None = None, online: bool = True,
                 client=None, registries: dict | None = None):
        self.user = read_user_file(user_file) if user_file else {}
        self.user_file = str(user_file) if user_file else None
        default_cache = Path(os.environ.get("TRANSFERLAB_CACHE", Path.home() / ".cache" / "transferlab"))
        self.cache_file = Path(cache_file) if cache_file else default_cache / "vuln-repository-map.json"
        self.online = online
        self.registries = {**REGISTRIES, **(registries or {})}
        self._client = client
        self._cache = self._load_cache()

    @property
    def client(self):
        if self._client is None:
            from .sources.http import HttpClient

            self._client = HttpClient(max_retries=2, max_wait=30, timeout=20)
        return self._client

    def _load_cache(self) -> dict:
        try:
            cache = json.loads(self.cache_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # missing, unreadable or damaged: start afresh
            return {}
        return cache if isinstance(cache, dict) else {}

    def save(self) -> None:
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._cache, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(self.cache_file)

    def map(self, dep: Dependency) -> Mapping:
        key = _key(dep.ecosystem, dep.name)
        if key in self.user:
            entry = self.user[key]
            return Mapping(dep.ecosystem, dep.name, entry["projects"], f"user mapping file {self.user_file}",
                           mentions=entry["mentions"])
        if dep.ecosystem == "Go":
            project = self._go(dep.name)
            if project:
                return Mapping(dep.ecosystem, dep.name, [project], "Go module path")
        cached = self._cache.get(key)
        if (isinstance(cached, dict) and isinstance(cached.get("at"), (int, float))
                and time.time() - cached["at"] < CACHE_DAYS * 86400):
            return Mapping(dep.ecosystem, dep.name, cached["projects"], f"cache ({cached['provenance']})",
                           cached.get("reason"))
        if not self.online:
            return Mapping(dep.ecosystem, dep.name, reason="offline, not in the mapping file or the cache")
        from xml.etree.ElementTree import ParseError

        from defusedxml import DefusedXmlException

        from .sources.base import SourceError
        from .sources.http import NotFound

        try:
            project, provenance = self._lookup(dep)
            reason = None if project else f"{provenance}: no source repository given"
        except NotFound:
            project, provenance = None, f"{dep.ecosystem} registry"
            reason = f"{provenance}: no such package"
        except SourceError as err:
            return Mapping(dep.ecosystem, dep.name, reason=f"registry unreachable: {err.message}")
        except ParseError as err:  # a POM or metadata file that is not XML: not remembered, may be transient
            return Mapping(dep.ecosystem, dep.name, reason=f"registry answer is not XML: {err}")
        except DefusedXmlException as err:
            return Mapping(dep.ecosystem, dep.name, reason=f"registry answer refused: the XML declares entities or "
                           f"a DTD ({err})")
        except ShapeError as err:
            return Mapping(dep.ecosystem, dep.name, reason=f"registry answer of an unexpected shape: {err}")
        mapping = Mapping(dep.ecosystem, dep.name, [project] if project else [], provenance, reason)
        self._cache[key] = {**asdict(mapping), "at": time.time()}
        return mapping

    @staticmethod
    def _go(module: str) -> str | None:
        m = re.match(r"(?:github\.com|gitlab\.com|bitbucket\.org)/([\w.-]+)/([\w.-]+)", module)
        if m:
            return f"{m.group(1)}/{m.group(2)}"
        for prefix, repo in _GO_VANITY.items():
            if module.startswith(prefix):
                return repo + module[len(prefix):].split("/")[0] if repo.endswith("/") else repo
        return None

    def _answer(self, url: str) -> dict:
        """A registry's JSON answer, which must be an object (else a ShapeError); URLs in it may be anything, as
        :func:`_first_repo` keeps only strings that name a repository."""
        return expect(self.client.json(url), dict, "the answer")

    def _lookup(self, dep: Dependency) -> tuple[str | None, str]:
        r = self.registries
        if dep.ecosystem == "PyPI":
            name = quote(normalise_name("PyPI", dep.name))
            info = member(self._answer(f"{r['pypi']}/pypi/{name}/json"), "info", dict, "", {})
            urls = list(member(info, "project_urls", dict, "info", {}).values()) + [info.get("home_page")]
            return _first_repo(urls), "PyPI metadata (project_urls)"
        if dep.ecosystem == "npm":
            data = self._answer(f"{r['npm']}/{quote(dep.name, safe='@')}")
            repo = data.get("repository")
            url = member(repo, "url", str, "repository") if isinstance(repo, dict) else \
                None if repo is None else expect(repo, str, "repository")
            return (_first_repo([url, data.get("homepage")]) or (project_of(url) if url and url.count("/") == 1
                                                                 else None)), "npm registry (repository)"
        if dep.ecosystem == "Maven":
            return self._maven(dep), "Maven POM (scm)"
        if dep.ecosystem == "crates.io":
            crate = member(self._answer(f"{r['crates']}/api/v1/crates/{quote(dep.name)}"), "crate", dict, "", {})
            return _first_repo([crate.get("repository"), crate.get("homepage")]), "crates.io (repository)"
        if dep.ecosystem == "RubyGems":
            gem = self._answer(f"{r['rubygems']}/api/v1/gems/{quote(dep.name)}.json")
            return _first_repo([gem.get("source_code_uri"), gem.get("homepage_uri")]), "RubyGems (source_code_uri)"
        return None, f"no registry lookup for {dep.ecosystem}"

    def _maven(self, dep: Dependency) -> str | None:
        from defusedxml import ElementTree

        group, _, artifact = dep.name.partition(":")
        base = f"{self.registries['maven']}/{group.replace('.', '/')}/{artifact}"
        version = dep.version
        if not version:
            meta = ElementTree.fromstring(self.client.get(f"{base}/maven-metadata.xml").text)
            version = meta.findtext("versioning/release") or meta.findtext("versioning/latest")
            if not version:
                raise ShapeError("maven-metadata.xml", "no <versioning><release> or <latest>")
        pom = ElementTree.fromstring(self.client.get(f"{base}/{version}/{artifact}-{version}.pom").text)
        ns = {"m": pom.tag[1:].split("}")[0]} if pom.tag.startswith("{") else {}
        p = "m:" if ns else ""
        return _first_repo([pom.findtext(f"{p}scm/{p}url", None, ns), pom.findtext(f"{p}scm/{p}connection", None, ns),
                            pom.findtext(f"{p}url", None, ns)])
