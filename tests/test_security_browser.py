"""The HTML report, and the Markdown report rendered by a CommonMark renderer, opened in a real headless Chromium:
no script of a stranger runs (``window.__pwned`` stays unset, no dialog opens), even when every link is clicked,
and the hostile text is shown as text.

Uses Debian's ``chromium`` (scripts/chromium.sh) through Playwright's executable path; skipped without it unless
TRANSFERLAB_REQUIRE_CHROMIUM=1 (CI), then a failure.
"""

import os
import shutil

import pytest
from markdown_it import MarkdownIt

from test_security_reports import HOSTILE, HOSTILE_EVIDENCE, hostile_result
from transferlab.vuln import report as R

REQUIRED = os.environ.get("TRANSFERLAB_REQUIRE_CHROMIUM") == "1"
# Keeps an http(s) link from leaving the page (there is no network, and the check must run on the report itself);
# a javascript: link is not stopped, so if one existed its script would run as a click would run it.
STAY = """document.addEventListener('click', e => {
  const a = e.target.closest('a'); if (a && /^https?:/i.test(a.href)) e.preventDefault(); }, true)"""


@pytest.fixture(scope="module")
def browser():
    executable = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if executable is None or sync_playwright is None:
        missing = "chromium (bash scripts/chromium.sh)" if executable is None else "playwright (pip install playwright)"
        if REQUIRED:
            pytest.fail(f"TRANSFERLAB_REQUIRE_CHROMIUM=1 but {missing} is missing")
        pytest.skip(f"{missing} is not installed")
    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


def assert_inert_in_browser(browser, path, expect_links: bool = True) -> None:
    page = browser.new_page()
    dialogs, requests = [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else
               (requests.append(route.request.url), route.abort()))  # no network at all
    try:
        url = path.resolve().as_uri()
        page.goto(url)
        page.wait_for_timeout(100)  # onerror/onload handlers of anything injected would have run by now
        assert page.evaluate("typeof window.__pwned") == "undefined", "a script ran on load"
        text = " ".join(page.inner_text("body").split())
        for title, _ in HOSTILE[:4]:
            assert title in text  # shown as text
        assert " ".join(HOSTILE_EVIDENCE.split()) in text
        links = page.locator("a").count()
        assert links or not expect_links
        for i in range(links):
            page.goto(url)
            page.evaluate(STAY)
            page.locator("a").nth(i).click(timeout=2000)
            page.wait_for_timeout(50)
            assert page.url == url and page.evaluate("typeof window.__pwned") == "undefined", (i, page.url)
        assert not dialogs, dialogs
        assert not requests, requests  # nothing loaded from outside
    finally:
        page.close()


def test_html_report_runs_no_script_in_a_browser(browser, tmp_path):
    assert_inert_in_browser(browser, R.write(hostile_result(), tmp_path / "report.html"))


def test_markdown_report_rendered_runs_no_script_in_a_browser(browser, tmp_path):
    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])  # raw HTML on, as many viewers have it
    md.validateLink = lambda url: True  # and no link filter of its own: only the report's escaping protects
    body = md.render(R.markdown(hostile_result()))
    page = tmp_path / "report-md.html"
    page.write_text(f"<!doctype html><html><head><meta charset='utf-8'></head><body>{body}</body></html>",
                    encoding="utf-8")
    assert_inert_in_browser(browser, page)
