"""Package -> repository mapping: user file first, then cache, then registries (replayed locally), with provenance."""

import pytest

from replay import ReplayServer
from transferlab.vuln.dependencies import Dependency
from transferlab.vuln.mapping import MappingFileError, RepositoryMapper, project_of
from transferlab.vuln.sources.http import HttpClient

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0"><scm>
<url>https://github.com/apache/logging-log4j2</url></scm></project>"""


def registry():
    server = ReplayServer()
    server.add("/pypi/django/json", {"info": {"project_urls": {"Documentation": "https://docs.djangoproject.com/",
                                                               "Source": "https://github.com/django/django"}}})
    server.add("/pypi/nosource/json", {"info": {"project_urls": None, "home_page": "https://example.org"}})
    server.add("/@babel%2Fcore", {"repository": {"type": "git", "url": "git+https://github.com/babel/babel.git"}})
    server.add("/org/apache/logging/log4j/log4j-core/2.14.1/log4j-core-2.14.1.pom", payload=None)
    server.routes["/org/apache/logging/log4j/log4j-core/2.14.1/log4j-core-2.14.1.pom"][0].body = POM.encode()
    return server


def mapper(server, tmp_path, **kw):
    urls = {"pypi": server.url, "npm": server.url, "maven": server.url}
    return RepositoryMapper(cache_file=tmp_path / "cache.json", registries=urls,
                            client=HttpClient(max_retries=0, sleep=lambda s: None), **kw)


def test_registries_give_repositories_with_provenance(tmp_path):
    with registry() as server:
        m = mapper(server, tmp_path)
        django = m.map(Dependency("PyPI", "Django", "3.2"))
        assert (django.projects, django.provenance) == (["django/django"], "PyPI metadata (project_urls)")
        babel = m.map(Dependency("npm", "@babel/core", "7.0.0"))
        assert babel.projects == ["babel/babel"] and "npm" in babel.provenance
        log4j = m.map(Dependency("Maven", "org.apache.logging.log4j:log4j-core", "2.14.1"))
        assert log4j.projects == ["apache/logging-log4j2"] and log4j.provenance == "Maven POM (scm)"
        none = m.map(Dependency("PyPI", "nosource", "1.0"))
        assert not none.found and "no source repository" in none.reason
        missing = m.map(Dependency("PyPI", "no-such-package", "1.0"))
        assert not missing.found and "no such package" in missing.reason
        m.save()
        served = len(server.seen)
    # A second mapper answers from the cache without the network (the server is gone now).
    again = RepositoryMapper(cache_file=tmp_path / "cache.json", online=False)
    cached = again.map(Dependency("PyPI", "django", None))
    assert cached.projects == ["django/django"] and cached.provenance.startswith("cache (PyPI metadata")
    assert served == 5


def test_user_file_wins_and_go_paths_need_no_network(tmp_path):
    user = tmp_path / "map.toml"
    user.write_text('[PyPI]\nDjango = "https://github.com/my-fork/django"\n'
                    '[npm]\nlodash = ["lodash/lodash", "lodash-users@googlegroups.com"]\n')
    m = RepositoryMapper(user_file=user, cache_file=tmp_path / "c.json", online=False)
    assert m.map(Dependency("PyPI", "django", "3.2")).projects == ["my-fork/django"]
    lodash = m.map(Dependency("npm", "lodash", "4.17.15"))
    assert lodash.projects == ["lodash/lodash", "lodash-users@googlegroups.com"] and "map.toml" in lodash.provenance
    assert m.map(Dependency("Go", "github.com/gin-gonic/gin/v2", "1.7.0")).projects == ["gin-gonic/gin"]
    assert m.map(Dependency("Go", "golang.org/x/text", "0.3.7")).projects == ["golang/text"]
    offline = m.map(Dependency("crates.io", "smallvec", "1.6.0"))
    assert not offline.found and offline.reason.startswith("offline")


def test_table_entries_add_mentions_for_shared_targets(tmp_path):
    from transferlab.vuln.scan import linked

    user = tmp_path / "map.toml"
    user.write_text('[PyPI."qemu.qmp"]\nprojects = ["https://gitlab.com/qemu-project/python-qemu-qmp", '
                    '"oss-security.lists.openwall.com"]\nmentions = ["qemu"]\n')
    m = RepositoryMapper(user_file=user, cache_file=tmp_path / "c.json", online=False)
    qmp = m.map(Dependency("PyPI", "qemu-qmp", "0.0.3"))  # PEP 503: qemu.qmp = qemu-qmp
    assert qmp.projects == ["qemu-project/python-qemu-qmp", "oss-security.lists.openwall.com"]
    assert qmp.mentions == ["qemu"]
    post = {"project": "oss-security.lists.openwall.com", "title": "CVE request QEMU: 9pfs leak", "body": ""}
    other = {"project": "oss-security.lists.openwall.com", "title": "Linux kernel: missing access_ok()",
             "body": "qemusomething is not a mention"}
    own = {"project": "qemu-project/python-qemu-qmp", "title": "fix typo", "body": ""}
    assert linked(post, qmp) and not linked(other, qmp) and linked(own, qmp)
    bad = tmp_path / "bad.toml"
    bad.write_text('[PyPI.x]\nrepos = ["a/b"]\n')
    with pytest.raises(MappingFileError, match="projects"):
        RepositoryMapper(user_file=bad)


def test_unreachable_registry_is_a_reason_not_a_crash(tmp_path):
    m = RepositoryMapper(cache_file=tmp_path / "c.json", registries={"pypi": "http://127.0.0.1:1"},
                         client=HttpClient(max_retries=0, sleep=lambda s: None, timeout=2))
    result = m.map(Dependency("PyPI", "django", "3.2"))
    assert not result.found and result.reason.startswith("registry unreachable")
    assert "pypi:django" not in m._cache  # a network failure is not remembered as an answer


def test_bad_user_file_and_url_forms(tmp_path):
    bad = tmp_path / "map.toml"
    bad.write_text("[PyPI]\ndjango = 3\n")
    with pytest.raises(MappingFileError, match="a target is a string"):
        RepositoryMapper(user_file=bad)
    assert project_of("git+https://github.com/lodash/lodash.git") == "lodash/lodash"
    assert project_of("scm:git:git@github.com:apache/commons-text.git") == "apache/commons-text"
    assert project_of("oss-security@lists.openwall.com") == "oss-security@lists.openwall.com"
