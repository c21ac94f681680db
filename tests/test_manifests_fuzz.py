"""Property-based tests of the ten manifest parsers: random shapes, random Unicode, random bytes (issue 13).

Whatever a file holds, :func:`parse_manifest` returns a Manifest or raises :class:`ManifestError` (the whole file
cannot be read); a bad entry is a counted :class:`Problem` with its place, and a good entry beside it is kept.
"""

import json
import math
import os
import tempfile
from pathlib import Path
from xml.etree import ElementTree

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transferlab.vuln.dependencies import PARSERS, ManifestError, parse_manifest

# A few seconds in the suite; TRANSFERLAB_FUZZ_EXAMPLES=2000 for a longer hunt.
FUZZ = settings(max_examples=int(os.environ.get("TRANSFERLAB_FUZZ_EXAMPLES", "60")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

# Text a stranger may write: lone surrogates, NUL, right-to-left marks, line separators, very long strings.
NASTY = st.sampled_from(["\ud800", "\x00", "\u202e", "\u200f", "\u2028", "\x85", "\r", "\\", '"', "'", "${x}",
                         "==", "-r ", "\n-r ", "\n--requirement=", "\n-c", "-r\x00", "(", ")", "[", "]", "{", "}",
                         "<", "&", "<?xml version='1.0' encoding='x-bogus'?>", "<!DOCTYPE p [<!ENTITY a 'b'>]>&a;",
                         "node_modules/", "x" * 5000])
TEXT = st.lists(st.one_of(st.text(max_size=20), NASTY), max_size=8).map("".join)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), TEXT)
JSON = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(TEXT, inner, max_size=4)), max_leaves=20)
TOMLISH = st.recursive(st.one_of(st.booleans(), st.integers(-2**63, 2**63 - 1), TEXT,
                                 st.floats(allow_nan=False, allow_infinity=False)),
                       lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
                       max_leaves=20)
KEYS = st.sampled_from(["project", "dependencies", "optional-dependencies", "dependency-groups", "tool", "poetry",
                        "group", "dev-dependencies", "package", "name", "version", "source", "python", "packages",
                        "devDependencies", "link", "node_modules/a", ""])
SHAPED = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.one_of(KEYS, TEXT), inner, max_size=4)),
                      max_leaves=25)

JSON_KINDS = ["package.json", "package-lock.json"]
TOML_KINDS = ["pyproject.toml", "poetry.lock", "uv.lock", "Cargo.lock"]
TEXT_KINDS = ["requirements.txt", "go.mod", "Gemfile.lock", "pom.xml"]
assert sorted(JSON_KINDS + TOML_KINDS + TEXT_KINDS) == sorted(PARSERS)  # every parser is fuzzed


def toml(value) -> str:
    """TOML has no writer in the standard library; inline tables and arrays are all these shapes need."""
    if value is None:
        return '""'  # TOML has no null
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if math.isfinite(value) else "0"
    if isinstance(value, str):
        # A JSON string is a TOML basic string once DEL is escaped too; a lone surrogate stays raw (not UTF-8).
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml(k)} = {toml(v)}" for k, v in value.items()) + "}"


def toml_document(data) -> str:
    if not isinstance(data, dict):
        data = {"x": data}
    return "".join(f"{toml(k)} = {toml(v)}\n" for k, v in data.items())


def parse(kind: str, content: str | bytes):
    """parse_manifest on a fresh file of that name: a Manifest, or None when the whole file was refused."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / kind
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
        try:
            manifest = parse_manifest(path)
        except ManifestError as err:
            assert err.where and err.where.startswith(str(path))
            return None
    for dep in manifest.dependencies:
        assert isinstance(dep.name, str) and dep.name and isinstance(dep.version, (str, type(None)))
        assert isinstance(dep.spec, str) and dep.source.startswith(str(path))
    for problem in manifest.problems:
        assert problem.location.startswith(str(path)) and isinstance(problem.reason, str) and problem.reason
    return manifest


def names(manifest) -> set[str]:
    return {d.name for d in manifest.dependencies}


# ---------------------------------------------------------------------- nothing raises past the parser
@FUZZ
@given(kind=st.sampled_from(sorted(PARSERS)), blob=st.binary(max_size=2000))
def test_random_bytes(kind, blob):
    parse(kind, blob)


@FUZZ
@given(kind=st.sampled_from(sorted(PARSERS)), text=st.lists(st.one_of(TEXT, st.just("\n")), max_size=30).map("".join))
def test_random_unicode(kind, text):
    parse(kind, text)


@FUZZ
@given(kind=st.sampled_from(JSON_KINDS), data=st.one_of(JSON, SHAPED))
def test_random_json_shapes(kind, data):
    parse(kind, json.dumps(data))


@FUZZ
@given(kind=st.sampled_from(TOML_KINDS), data=st.one_of(TOMLISH, SHAPED.filter(lambda d: d is not None)))
def test_random_toml_shapes(kind, data):
    parse(kind, toml_document(json.loads(json.dumps(data), parse_constant=str)) if data is not None else "")


XML_TAGS = st.sampled_from(["project", "dependencies", "dependency", "groupId", "artifactId", "version",
                            "properties", "scope", "x"])


def _element(tag, text, children):
    element = ElementTree.Element(tag)
    element.text = text
    element.extend(children)
    return element


ELEMENTS = st.recursive(st.builds(_element, XML_TAGS, st.one_of(st.none(), TEXT), st.just([])),
                        lambda inner: st.builds(_element, XML_TAGS, st.one_of(st.none(), TEXT),
                                                st.lists(inner, max_size=4)), max_leaves=15)


@FUZZ
@given(root=ELEMENTS, namespace=st.booleans())
def test_random_xml_shapes(root, namespace):
    text = ElementTree.tostring(root, encoding="unicode")
    if namespace:
        text = text.replace(f"<{root.tag}", f'<{root.tag} xmlns="http://maven.apache.org/POM/4.0.0"', 1)
    parse("pom.xml", text)


# ---------------------------------------------------------------------- good entries beside bad ones are kept
LINE = st.lists(st.one_of(st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\n\r"
                                                                                "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"),
                                  max_size=20), NASTY.filter(lambda s: not set(s) & set("\r\n\x85\u2028\ud800"))),
                max_size=6).map("".join)


@FUZZ
@given(bad=st.lists(LINE, max_size=5))
def test_requirements_keep_good_lines(bad):
    m = parse("requirements.txt", "django==3.2\n" + "\n".join(bad))
    assert "django" in names(m)


@FUZZ
@given(bad=st.lists(LINE.filter(lambda s: s.strip() != ")"), max_size=5))
def test_go_mod_keeps_good_requirements(bad):
    lines = "\n".join(line.replace("(", "").replace(")", "") for line in bad)
    m = parse("go.mod", f"module x\nrequire (\n\tgood/mod v1.0.0\n{lines}\n)\n")
    assert "good/mod" in names(m)


@FUZZ
@given(bad=st.lists(LINE, max_size=5))
def test_gemfile_lock_keeps_good_gems(bad):
    m = parse("Gemfile.lock", "GEM\n  specs:\n    good (1.0)\n" + "\n".join("      " + b for b in bad))
    assert "good" in names(m)


@FUZZ
@given(bad=st.one_of(JSON, SHAPED), key=TEXT, table=st.sampled_from(["dependencies", "devDependencies"]))
def test_package_json_keeps_good_entries(bad, key, table):
    data = {"dependencies": {"good": "1.0.0"}}
    data.setdefault(table, {})[key or "k"] = bad
    if key != "good":
        assert "good" in names(parse("package.json", json.dumps(data)))


@FUZZ
@given(bad=st.one_of(JSON, SHAPED), key=TEXT, v1=st.booleans())
def test_package_lock_keeps_good_entries(bad, key, v1):
    if v1:
        data = {"dependencies": {"good": {"version": "1.0.0"}, key or "k": bad}}
    else:
        data = {"packages": {"": {"name": "app"}, "node_modules/good": {"version": "1.0.0"}, key or "k": bad}}
    if key not in ("good", "node_modules/good"):
        assert "good" in names(parse("package-lock.json", json.dumps(data)))


@FUZZ
@given(bad=st.one_of(TOMLISH, SHAPED.filter(lambda d: d is not None)), where=st.integers(0, 3))
def test_pyproject_keeps_good_requirements(bad, where):
    bad = json.loads(json.dumps(bad))
    project = {"name": "x", "dependencies": ["django==3.2"]}
    if where == 0:
        project["dependencies"].append(bad)
    elif where == 1:
        project["optional-dependencies"] = bad
    data = {"project": project}
    if where == 2:
        data["dependency-groups"] = bad
    elif where == 3:
        data["tool"] = {"poetry": bad}
    text = toml_document(data)
    m = parse("pyproject.toml", text)
    assert "django" in names(m) if m else "\ud800" in text  # a lone surrogate is not UTF-8: the whole file


@FUZZ
@given(bad=st.one_of(TOMLISH, SHAPED.filter(lambda d: d is not None)),
       kind=st.sampled_from(["poetry.lock", "uv.lock", "Cargo.lock"]))
def test_lockfiles_keep_good_packages(bad, kind):
    data = {"package": [{"name": "good", "version": "1.0"}, json.loads(json.dumps(bad))]}
    text = toml_document(data)
    m = parse(kind, text)
    assert "good" in names(m) if m else "\ud800" in text


@FUZZ
@given(bad=ELEMENTS)
def test_pom_keeps_good_dependencies(bad):
    root = ElementTree.fromstring("<project><dependencies><dependency><groupId>g</groupId>"
                                  "<artifactId>good</artifactId><version>1.0</version></dependency>"
                                  "</dependencies></project>")
    root.find("dependencies").append(bad)
    m = parse("pom.xml", ElementTree.tostring(root, encoding="unicode"))
    assert m is None or "g:good" in names(m)  # None: the random text is not XML (a control character, say)
