"""Manifest and lockfile parsers: one realistic file per format, and the ways they break."""

import json
import textwrap

import pytest

from transferlab.vuln.dependencies import ManifestError, parse_manifest


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def deps(manifest):
    return {(d.ecosystem, d.name, d.version) for d in manifest.dependencies}


def test_requirements_txt(tmp_path):
    write(tmp_path, "base.txt", "urllib3==1.26.5\n")
    m = parse_manifest(write(tmp_path, "requirements.txt", """
        # pinned
        Django==3.2.1  # web
        requests>=2.25,<3
        PyYAML===5.3.1 \\
            --hash=sha256:abc
        Pillow[extras]==8.0.0; python_version >= "3.8"
        -r base.txt
        --index-url https://example.org/simple
        -e .
        not a requirement !!
        """))
    assert deps(m) == {("PyPI", "django", "3.2.1"), ("PyPI", "requests", None), ("PyPI", "pyyaml", "5.3.1"),
                       ("PyPI", "pillow", "8.0.0"), ("PyPI", "urllib3", "1.26.5")}
    assert [p.location.rsplit(":", 1)[1] for p in m.problems] == ["10"]
    requests = next(d for d in m.dependencies if d.name == "requests")
    assert requests.spec == "<3,>=2.25" and requests.source.endswith("requirements.txt:3")


def test_pyproject_pep621_and_poetry(tmp_path):
    m = parse_manifest(write(tmp_path, "pyproject.toml", """
        [project]
        name = "app"
        dependencies = ["jinja2==2.10", "lxml>=4"]
        [project.optional-dependencies]
        docs = ["sphinx==7.1.0"]
        [tool.poetry.dependencies]
        python = "^3.11"
        Flask = "2.0.1"
        numpy = {version = "^1.24"}
        """))
    assert deps(m) == {("PyPI", "jinja2", "2.10"), ("PyPI", "lxml", None), ("PyPI", "sphinx", "7.1.0"),
                       ("PyPI", "flask", "2.0.1"), ("PyPI", "numpy", None)}


def test_poetry_uv_and_cargo_locks(tmp_path):
    poetry = parse_manifest(write(tmp_path, "poetry.lock", """
        [[package]]
        name = "Jinja2"
        version = "2.10"
        [[package]]
        name = "markupsafe"
        version = "2.1.3"
        """))
    assert deps(poetry) == {("PyPI", "jinja2", "2.10"), ("PyPI", "markupsafe", "2.1.3")}
    uv = parse_manifest(write(tmp_path, "uv.lock", """
        version = 1
        [[package]]
        name = "app"
        version = "0.1.0"
        source = { editable = "." }
        [[package]]
        name = "idna"
        version = "3.6"
        source = { registry = "https://pypi.org/simple" }
        """))
    assert deps(uv) == {("PyPI", "idna", "3.6")}
    cargo = parse_manifest(write(tmp_path, "Cargo.lock", """
        version = 3
        [[package]]
        name = "smallvec"
        version = "1.6.0"
        """))
    assert deps(cargo) == {("crates.io", "smallvec", "1.6.0")}
    assert cargo.dependencies[0].source.endswith("Cargo.lock:3")


def test_npm_package_json_and_both_lockfile_layouts(tmp_path):
    pkg = parse_manifest(write(tmp_path, "package.json", json.dumps(
        {"name": "app", "dependencies": {"lodash": "4.17.15", "express": "^4.17.0"},
         "devDependencies": {"@babel/core": "7.0.0"}}, indent=2)))
    assert deps(pkg) == {("npm", "lodash", "4.17.15"), ("npm", "express", None), ("npm", "@babel/core", "7.0.0")}
    v3 = parse_manifest(write(tmp_path, "package-lock.json", json.dumps({"lockfileVersion": 3, "packages": {
        "": {"name": "app"}, "node_modules/lodash": {"version": "4.17.15"},
        "node_modules/a/node_modules/minimist": {"version": "0.0.8"},
        "node_modules/local": {"link": True}}}, indent=2)))
    assert deps(v3) == {("npm", "lodash", "4.17.15"), ("npm", "minimist", "0.0.8")}
    (tmp_path / "v1").mkdir()
    v1 = parse_manifest(write(tmp_path / "v1", "package-lock.json", json.dumps({"lockfileVersion": 1, "dependencies": {
        "mkdirp": {"version": "0.5.1", "dependencies": {"minimist": {"version": "0.0.8"}}}}})))
    assert deps(v1) == {("npm", "mkdirp", "0.5.1"), ("npm", "minimist", "0.0.8")}


def test_go_mod(tmp_path):
    m = parse_manifest(write(tmp_path, "go.mod", """
        module example.com/app

        go 1.21

        require golang.org/x/text v0.3.7
        require (
            github.com/gin-gonic/gin v1.7.0 // indirect
            github.com/broken
        )
        replace github.com/a/b => ../b
        """))
    assert deps(m) == {("Go", "golang.org/x/text", "0.3.7"), ("Go", "github.com/gin-gonic/gin", "1.7.0")}
    assert len(m.problems) == 1 and "needs a module and a version" in m.problems[0].reason
    with pytest.raises(ManifestError, match="never closed"):
        parse_manifest(write(tmp_path, "go.mod", "module x\nrequire (\n  a/b v1.0.0\n"))


def test_pom_xml_with_properties(tmp_path):
    m = parse_manifest(write(tmp_path, "pom.xml", """
        <project xmlns="http://maven.apache.org/POM/4.0.0">
          <version>1.0</version>
          <properties><log4j.version>2.14.1</log4j.version></properties>
          <dependencies>
            <dependency>
              <groupId>org.apache.logging.log4j</groupId>
              <artifactId>log4j-core</artifactId>
              <version>${log4j.version}</version>
            </dependency>
            <dependency>
              <groupId>junit</groupId><artifactId>junit</artifactId><version>[4.0,5.0)</version>
            </dependency>
          </dependencies>
        </project>
        """))
    assert deps(m) == {("Maven", "org.apache.logging.log4j:log4j-core", "2.14.1"), ("Maven", "junit:junit", None)}
    with pytest.raises(ManifestError, match=r"pom.xml:2:\d+: not well-formed XML"):
        parse_manifest(write(tmp_path, "pom.xml", "<project>\n<dependencies></project>"))
    with pytest.raises(ManifestError, match="refused"):  # an entity bomb is refused, not expanded
        parse_manifest(write(tmp_path, "pom.xml", '<?xml version="1.0"?><!DOCTYPE p [<!ENTITY a "aaaa">]><p>&a;</p>'))


def test_gemfile_lock(tmp_path):
    m = parse_manifest(write(tmp_path, "Gemfile.lock", """
        GEM
          remote: https://rubygems.org/
          specs:
            nokogiri (1.10.3-x86_64-linux)
              mini_portile2 (~> 2.4.0)
            rack (2.0.7)

        PLATFORMS
          ruby
        """))
    assert deps(m) == {("RubyGems", "nokogiri", "1.10.3"), ("RubyGems", "rack", "2.0.7")}


def test_syntax_errors_say_where(tmp_path):
    with pytest.raises(ManifestError, match=r"package.json:3:\d+: not valid JSON"):
        parse_manifest(write(tmp_path, "package.json", '{\n  "dependencies": {\n    "a": "1.0",,\n  }\n}'))
    with pytest.raises(ManifestError, match="not valid TOML.*line 2"):
        parse_manifest(write(tmp_path, "pyproject.toml", '[project]\nname = = "x"\n'))
    with pytest.raises(ManifestError, match="unknown manifest kind 'build.gradle'"):
        parse_manifest(write(tmp_path, "build.gradle", "dependencies {}"))
    with pytest.raises(ManifestError, match="no such file"):
        parse_manifest(tmp_path / "requirements.txt")
