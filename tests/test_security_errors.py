"""Hostile or malformed advisories, manifests, registry answers and reviewer names: a clear error naming the file
and place, or a counted skip, never a traceback; and exit codes a CI job can tell apart (issue 13)."""

import json
import struct
import types
import zipfile

import pytest
from typer.testing import CliRunner

from replay import ReplayServer
from transferlab.cli import app
from transferlab.errors import ModelFileError, TransferLabError
from transferlab.vuln.advisories import AdvisoryError, AdvisoryIndex
from transferlab.vuln.dependencies import Dependency, parse_manifest
from transferlab.vuln.mapping import RepositoryMapper
from transferlab.vuln.sources.http import HttpClient

GOOD = {"id": "GHSA-good", "aliases": ["CVE-2024-0001"], "summary": "fine",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "django"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "4.0"}]}]}],
        "references": [{"type": "FIX", "url": "https://github.com/django/django/pull/1"}]}


def _export(tmp_path, **files):
    (tmp_path / "osv").mkdir()
    (tmp_path / "osv" / "good.json").write_text(json.dumps(GOOD))
    for name, data in files.items():
        (tmp_path / "osv" / f"{name}.json").write_text(json.dumps(data))
    return AdvisoryIndex.from_directory(tmp_path / "osv")


# ---------------------------------------------------------------------- OSV advisories
def test_osv_file_that_is_a_list_is_a_counted_skip(tmp_path):
    index = _export(tmp_path, listed=[GOOD])
    assert index.count == 1 and len(index.problems) == 1
    assert "listed.json" in index.problems[0] and "a list" in index.problems[0]


def test_osv_reference_that_is_a_string_is_a_skip_naming_the_place(tmp_path):
    index = _export(tmp_path, strref={**GOOD, "id": "GHSA-str", "references": ["https://example.org"]})
    assert index.count == 1 and len(index.problems) == 1
    assert "strref.json" in index.problems[0] and "references[0]" in index.problems[0]


def test_osv_event_with_two_keys_is_skipped_at_load_not_a_crash_at_scan(tmp_path):
    two = {**GOOD, "id": "GHSA-two", "affected": [{"package": {"ecosystem": "PyPI", "name": "flask"}, "ranges": [
        {"type": "ECOSYSTEM", "events": [{"introduced": "0", "fixed": "1.2"}]}]}]}
    index = _export(tmp_path, two=two)
    assert [a.id for a in index.for_package("PyPI", "flask")] == []
    assert len(index.problems) == 1 and "events[0]" in index.problems[0] and "one key" in index.problems[0]
    (good,) = index.for_package("PyPI", "django")
    assert good.affects(Dependency("PyPI", "django", "3.2")) is True


def test_versions_of_thousands_of_digits_cannot_be_told_not_a_crash(tmp_path):
    long = {**GOOD, "id": "GHSA-long", "affected": [{"package": {"ecosystem": "PyPI", "name": "flask"}, "ranges": [
        {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "9" * 5000}]}]}]}
    (flask,) = _export(tmp_path, long=long).for_package("PyPI", "flask")
    assert flask.affects(Dependency("PyPI", "flask", "1.0")) is None
    assert flask.affects(Dependency("PyPI", "flask", "1." + "2" * 5000)) is None


def test_a_bad_zip_is_a_clear_error_naming_the_file(tmp_path):
    (tmp_path / "all.zip").write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(AdvisoryError, match="all.zip") as caught:
        AdvisoryIndex.from_directory(tmp_path)
    assert "not a zip" in caught.value.message


def test_oversized_zip_entries_are_skipped_unread(tmp_path):
    with zipfile.ZipFile(tmp_path / "all.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("good.json", json.dumps(GOOD))
        z.writestr("huge.json", json.dumps({**GOOD, "id": "GHSA-huge", "details": " " * (17 << 20)}))
    index = AdvisoryIndex.from_directory(tmp_path)  # the default cap (16 MiB) is far above any real OSV record
    assert index.count == 1 and len(index.problems) == 1
    assert "all.zip!huge.json" in index.problems[0] and "MiB" in index.problems[0]


def test_a_zip_entry_that_lies_about_its_size_is_a_skip(tmp_path):
    with zipfile.ZipFile(tmp_path / "all.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("good.json", json.dumps(GOOD))
        z.writestr("liar.json", json.dumps({**GOOD, "id": "GHSA-liar", "details": " " * 100_000}))
    blob = bytearray((tmp_path / "all.zip").read_bytes())
    central = blob.rfind(b"PK\x01\x02")  # the last entry's central-directory record: declare 10 bytes
    blob[central + 24:central + 28] = struct.pack("<I", 10)
    (tmp_path / "all.zip").write_bytes(bytes(blob))
    index = AdvisoryIndex.from_directory(tmp_path)
    assert index.count == 1 and len(index.problems) == 1 and "liar.json" in index.problems[0]


def test_osv_api_answers_of_the_wrong_shape_are_counted_skips():
    http = HttpClient(max_retries=0, sleep=lambda s: None)
    bad_vuln = {**GOOD, "id": "GHSA-bad", "references": "https://example.org"}
    with ReplayServer().add("/v1/query", {"vulns": [GOOD, bad_vuln, "nonsense"]}) as server:
        index = AdvisoryIndex.from_api([Dependency("PyPI", "django", "3.2")], client=http, base_url=server.url)
    assert index.count == 1 and len(index.problems) == 2
    assert "PyPI:django" in index.problems[0] and "references" in index.problems[0]
    with ReplayServer().add("/v1/query", ["not", "an", "object"]) as server:
        index = AdvisoryIndex.from_api([Dependency("PyPI", "django", "3.2")], client=http, base_url=server.url)
    assert index.count == 0 and "a list" in index.problems[0]


# ---------------------------------------------------------------------- manifests
def test_requirements_include_cycle_is_a_problem_naming_the_chain(tmp_path):
    (tmp_path / "requirements.txt").write_text("django==3.2\n-r more.txt\n")
    (tmp_path / "more.txt").write_text("flask==2.0\n-r requirements.txt\n")
    m = parse_manifest(tmp_path / "requirements.txt")
    assert {d.name for d in m.dependencies} == {"django", "flask"}
    (problem,) = m.problems
    assert "cycle" in problem.reason and "requirements.txt -> more.txt -> requirements.txt" in problem.reason
    assert problem.location.endswith("more.txt:2")


def test_requirements_including_itself_is_a_cycle_not_a_missing_file(tmp_path):
    (tmp_path / "requirements.txt").write_text("django==3.2\n--requirement=requirements.txt\n")
    m = parse_manifest(tmp_path / "requirements.txt")
    assert [d.name for d in m.dependencies] == ["django"]
    assert len(m.problems) == 1 and "cycle" in m.problems[0].reason


def test_requirements_include_that_is_a_folder_or_not_text_is_a_problem(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9==1.0\n")
    (tmp_path / "requirements.txt").write_text("django==3.2\n-r sub\n-r latin1.txt\n")
    m = parse_manifest(tmp_path / "requirements.txt")
    assert [d.name for d in m.dependencies] == ["django"]
    assert [p.location.rsplit(":", 1)[-1] for p in m.problems] == ["2", "3"]


def test_package_lock_entries_that_are_not_objects_are_problems(tmp_path):
    lock = {"lockfileVersion": 3, "packages": {"": {"name": "app"}, "node_modules/a": {"version": "1.0.0"},
                                               "node_modules/b": "2.0.0", "node_modules/c": None}}
    (tmp_path / "package-lock.json").write_text(json.dumps(lock, indent=1))
    m = parse_manifest(tmp_path / "package-lock.json")
    assert [(d.name, d.version) for d in m.dependencies] == [("a", "1.0.0")]
    assert len(m.problems) == 2 and 'packages."node_modules/b": expected an object' in m.problems[0].reason
    assert m.problems[0].location.endswith("package-lock.json:10")  # the line of its key
    v1 = {"dependencies": {"a": {"version": "1.0.0", "dependencies": {"b": ["x"]}}, "c": 3}}
    (tmp_path / "package-lock.json").write_text(json.dumps(v1))
    m = parse_manifest(tmp_path / "package-lock.json")
    assert [d.name for d in m.dependencies] == ["a"] and len(m.problems) == 2


def test_pyproject_dependencies_as_a_string_is_a_problem_not_letters(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = "django>=3"\n'
                                             '[project.optional-dependencies]\ntest = ["pytest==8.0", 3]\n')
    m = parse_manifest(tmp_path / "pyproject.toml")
    assert [(d.name, d.version) for d in m.dependencies] == [("pytest", "8.0")]
    reasons = " | ".join(f"{p.location}: {p.reason}" for p in m.problems)
    assert "must be a list of strings" in reasons and "project.dependencies" in reasons
    assert "optional-dependencies.test[1]" in reasons and len(m.problems) == 2


def test_a_manifest_that_is_not_an_object_or_a_folder_is_a_manifest_error(tmp_path):
    from transferlab.vuln.dependencies import ManifestError

    (tmp_path / "package.json").write_text("[1, 2]")
    with pytest.raises(ManifestError, match="package.json.*an object"):
        parse_manifest(tmp_path / "package.json")
    (tmp_path / "requirements.txt").mkdir()
    with pytest.raises(ManifestError, match="not a file"):
        parse_manifest(tmp_path / "requirements.txt")


def test_pom_with_entity_expansion_is_refused_clearly(tmp_path):
    from transferlab.vuln.dependencies import ManifestError

    bomb = ('<?xml version="1.0"?><!DOCTYPE p [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
            '<project><dependencies><dependency><groupId>&b;</groupId><artifactId>x</artifactId>'
            '</dependency></dependencies></project>')
    (tmp_path / "pom.xml").write_text(bomb)
    with pytest.raises(ManifestError, match="refused: the XML declares entities"):
        parse_manifest(tmp_path / "pom.xml")


# ---------------------------------------------------------------------- registry answers
ENTITY_POM = ('<?xml version="1.0"?><!DOCTYPE p [<!ENTITY e "https://github.com/evil/repo">]>'
              '<project><scm><url>&e;</url></scm></project>')


def _registry():
    server = ReplayServer()
    server.add("/pypi/listy/json", ["a", "list"])
    server.add("/pypi/strinfo/json", {"info": "a string"})
    server.add("/pypi/urls/json", {"info": {"project_urls": ["https://github.com/a/b"]}})
    server.add("/npmlist", [{"repository": "x"}])
    server.add("/npmnum", {"repository": {"url": 42}, "homepage": 7})
    server.add("/g/a/1.0/a-1.0.pom", payload=None)
    server.routes["/g/a/1.0/a-1.0.pom"][0].body = ENTITY_POM.encode()
    server.add("/pypi/django/json", {"info": {"project_urls": {"Source": "https://github.com/django/django"}}})
    return server


@pytest.mark.parametrize("ecosystem,name,expected", [
    ("PyPI", "listy", "expected an object"), ("PyPI", "strinfo", "info"), ("PyPI", "urls", "project_urls"),
    ("npm", "npmlist", "expected an object"), ("npm", "npmnum", "repository.url"),
    ("Maven", "g:a", "entities"),
])
def test_registry_answers_of_a_wrong_shape_are_not_mapped_with_a_reason(tmp_path, ecosystem, name, expected):
    with _registry() as server:
        urls = {"pypi": server.url, "npm": server.url, "maven": server.url}
        mapper = RepositoryMapper(cache_file=tmp_path / "c.json", registries=urls,
                                  client=HttpClient(max_retries=0, sleep=lambda s: None))
        mapping = mapper.map(Dependency(ecosystem, name, "1.0"))
        assert not mapping.found and expected in mapping.reason and "registry answer" in mapping.reason
        assert mapper.map(Dependency("PyPI", "django", "4.0")).projects == ["django/django"]  # the rest still maps


# ---------------------------------------------------------------------- reviewer names
def test_reviewer_longer_than_the_column_is_a_clear_error_on_every_database(db_url):
    from datetime import datetime, timezone

    from transferlab.vuln.records import Record
    from transferlab.vuln.sources.base import Batch
    from transferlab.vuln.store import Store, StoreError

    store = Store.open(db_url)
    when = datetime(2024, 1, 1, tzinfo=timezone.utc)
    store.write_batch("k", Batch(records=[Record(source="github", connector="t", project="a/b", kind="issue",
                                                 native_id="a/b#1", title="t", body="b", created_at=when,
                                                 updated_at=when)]))
    rid = next(store.iter_records())["id"]
    with pytest.raises(StoreError, match="256 characters"):
        store.add_verdict(rid, "vulnerability", "r" * 257)
    with pytest.raises(StoreError, match="control character"):
        store.add_verdict(rid, "vulnerability", "eve\x00")
    assert store.add_verdict(rid, "vulnerability", "é" * 256) > 0  # the limit is characters, not bytes


# ---------------------------------------------------------------------- exit codes
def test_exit_codes_are_distinct_and_documented():
    from transferlab.errors import ExitCode

    assert len({int(c) for c in ExitCode}) == len(ExitCode)
    assert TransferLabError("x").exit_code == ExitCode.BAD_INPUT == 2
    assert ModelFileError("x").exit_code == ExitCode.MODEL_FILE == 3
    assert ExitCode.EARLY_WARNING not in (0, 1, 2, 3)
    help_text = " ".join(CliRunner().invoke(app, ["vuln", "scan", "--help"], terminal_width=200).output.split())
    assert f"status {int(ExitCode.EARLY_WARNING)}" in help_text


def _scan(monkeypatch, tmp_path, cascade_error=None, warnings=1, extra=()):
    import transferlab.vuln.cli as vcli
    import transferlab.vuln.scan as vscan

    def cascade(*args, **kwargs):
        if cascade_error:
            raise cascade_error
        return None

    # a stand-in ScanResult: the fields the scan command reads (needs_attention: early warnings + text-only matches)
    result = types.SimpleNamespace(early_warnings=warnings, needs_attention=warnings, dependencies=[], problems=[],
                                   summary=lambda: "s")
    monkeypatch.setattr(vcli, "_cascade", cascade)
    monkeypatch.setattr(vscan, "scan", lambda *a, **k: result)
    (tmp_path / "requirements.txt").write_text("django==3.2\n")
    return CliRunner().invoke(app, ["vuln", "scan", "--manifest", str(tmp_path / "requirements.txt"), "--db",
                                    f"sqlite:///{tmp_path / 'v.db'}", "--offline", "--fail-on-warning", *extra])


def test_ci_tells_early_warnings_from_a_tampered_cascade(monkeypatch, tmp_path):
    from transferlab.errors import ExitCode

    assert _scan(monkeypatch, tmp_path).exit_code == ExitCode.EARLY_WARNING
    assert _scan(monkeypatch, tmp_path, warnings=0).exit_code == 0
    tampered = _scan(monkeypatch, tmp_path, ModelFileError("weights altered", where="cascade/"))
    assert tampered.exit_code == ExitCode.MODEL_FILE != ExitCode.EARLY_WARNING


# ---------------------------------------------------------------------- random OSV records
def test_random_osv_records_load_or_are_skipped_and_never_crash_a_scan():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from transferlab.vuln.advisories import Advisory
    from transferlab.vuln.dependencies import ShapeError

    scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8),
                       st.sampled_from(["0", "1.2", "9" * 5000, "PyPI", "django", "ECOSYSTEM", "introduced"]))
    keys = st.sampled_from(["id", "aliases", "affected", "package", "ecosystem", "name", "ranges", "type", "events",
                            "introduced", "fixed", "last_affected", "versions", "references", "url", "summary"])
    shapes = st.recursive(scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                          st.dictionaries(keys, inner, max_size=4)), max_leaves=30)

    @settings(max_examples=300, deadline=None)
    @given(data=shapes, version=st.sampled_from(["1.0", "0", "2.0.0rc1", "x"]))
    def check(data, version):
        try:
            advisory = Advisory.from_osv(data)
        except ShapeError as err:
            assert err.place and err.reason
            return
        for ecosystem, name in advisory.packages:
            assert advisory.affects(Dependency(ecosystem, name, version)) in (True, False, None)

    check()


def test_scan_reports_how_many_advisories_were_skipped(monkeypatch, tmp_path):
    _export(tmp_path, listed=[GOOD])
    result = _scan(monkeypatch, tmp_path, warnings=0, extra=["--osv", str(tmp_path / "osv")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "1 advisories read, 1 skipped" in text and "listed.json" in text
