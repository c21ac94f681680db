"""Known or new: matching flagged records against an OSV export, and which versions an advisory affects."""

import json
import zipfile

import pytest

from transferlab.vuln.advisories import AdvisoryError, AdvisoryIndex
from transferlab.vuln.dependencies import Dependency

LOG4SHELL = {
    "id": "GHSA-jfh8-c2jp-5v3q", "aliases": ["CVE-2021-44228"], "summary": "Remote code injection in Log4j",
    "published": "2021-12-10T00:40:56Z",
    "affected": [{"package": {"ecosystem": "Maven", "name": "org.apache.logging.log4j:log4j-core"},
                  "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.0-beta9"}, {"fixed": "2.15.0"}]}]}],
    "references": [{"type": "FIX", "url": "https://github.com/apache/logging-log4j2/pull/608"}],
}
DJANGO = {
    "id": "PYSEC-2021-98", "aliases": ["CVE-2021-33203"], "summary": "Directory traversal in Django",
    "affected": [{"package": {"ecosystem": "PyPI", "name": "Django"},
                  "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.2.24"},
                                                              {"introduced": "3.0"}, {"fixed": "3.1.12"},
                                                              {"introduced": "3.2"}, {"fixed": "3.2.4"}]}],
                  "versions": ["3.2.3"]}],
    "references": [],
}


@pytest.fixture
def index(tmp_path):
    (tmp_path / "maven").mkdir()
    (tmp_path / "maven" / "GHSA-jfh8-c2jp-5v3q.json").write_text(json.dumps(LOG4SHELL))
    with zipfile.ZipFile(tmp_path / "all.zip", "w") as z:
        z.writestr("PYSEC-2021-98.json", json.dumps(DJANGO))
        z.writestr("broken.json", "{not json")
    return AdvisoryIndex.from_directory(tmp_path)


LOG4J = Dependency("Maven", "org.apache.logging.log4j:log4j-core", "2.14.1")


def test_export_is_read_from_files_and_zips_with_bad_entries_counted(index):
    assert index.count == 2
    assert len(index.problems) == 1 and "broken.json" in index.problems[0]
    assert [a.id for a in index.for_package("PyPI", "django")] == ["PYSEC-2021-98"]


def test_a_record_is_disclosed_by_id_alias_or_link(index):
    by_alias = {"url": "https://github.com/x/y/issues/1", "refs": {"cve": ["CVE-2021-44228"]}}
    by_link = {"url": "https://github.com/apache/logging-log4j2/pull/608/", "refs": {}}
    links_the_fix = {"url": "https://lists.example.org/msg/1", "refs": {"urls": [
        "https://github.com/apache/logging-log4j2/pull/608"]}}  # a mail pointing at the fix the advisory cites
    assert index.match(links_the_fix, [LOG4J]).id == "GHSA-jfh8-c2jp-5v3q"
    new = {"url": "https://github.com/apache/logging-log4j2/issues/9999", "refs": {"cve": ["CVE-2099-0001"]}}
    assert index.match(by_alias, [LOG4J]).id == "GHSA-jfh8-c2jp-5v3q"
    assert index.match(by_link, [LOG4J]).id == "GHSA-jfh8-c2jp-5v3q"
    assert index.match(new, [LOG4J]) is None
    other_package = Dependency("npm", "lodash", "4.17.15")
    assert index.match(by_alias, [other_package]) is None  # the id must belong to an advisory of that package


def test_affected_versions_follow_osv_ranges(index):
    (log4shell,) = index.for_package("Maven", LOG4J.name)
    assert log4shell.affects(LOG4J) is True
    assert log4shell.affects(Dependency("Maven", LOG4J.name, "2.15.0")) is False
    assert log4shell.affects(Dependency("Maven", LOG4J.name, None)) is None
    (django,) = index.for_package("PyPI", "Django")
    verdicts = {v: django.affects(Dependency("PyPI", "django", v)) for v in ["2.2.23", "2.2.24", "3.1.5", "3.2.3",
                                                                              "3.2.4", "4.0"]}
    assert verdicts == {"2.2.23": True, "2.2.24": False, "3.1.5": True, "3.2.3": True, "3.2.4": False, "4.0": False}


def test_missing_export_is_a_clear_error(tmp_path):
    with pytest.raises(AdvisoryError, match="no such folder"):
        AdvisoryIndex.from_directory(tmp_path / "osv")


def test_osv_api_is_asked_per_package_and_errors_are_source_errors():
    from replay import ReplayServer
    from transferlab.vuln.sources import SourceError
    from transferlab.vuln.sources.http import HttpClient

    http = HttpClient(max_retries=0, sleep=lambda s: None)
    with ReplayServer().add("/v1/query", {"vulns": [LOG4SHELL]}) as server:
        index = AdvisoryIndex.from_api([LOG4J, LOG4J], client=http, base_url=server.url)
        assert index.count == 1 and index.origin == f"OSV API {server.url}"  # the same advisory once
        assert len(server.requests_to("/v1/query")) == 2
    with ReplayServer().add("/v1/query", {"message": "down"}, status=503) as server:
        with pytest.raises(SourceError, match="HTTP 503"):
            AdvisoryIndex.from_api([LOG4J], client=http, base_url=server.url)
