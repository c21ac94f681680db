"""The triage pages end to end in a real headless Chromium (Debian's, through Playwright): log in, open the queue,
move with the keyboard, open an item, judge it with a key, find the verdict in the database under the logged-in
reviewer, and see an admin's retrain pick it up.  A hostile item (script tags, onerror attributes, javascript:
links in title, body and URL) stays inert: no script of a stranger runs, no dialog opens.

Screenshots of the queue and an item go to $TRANSFERLAB_SCREENSHOTS when set (the README's come from here)."""

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from test_security_browser import browser  # noqa: E402,F401  (the Chromium fixture)
from test_serve_vuln import PASSWORD, _record, make_app  # noqa: E402
from transferlab.serve import accounts as acc  # noqa: E402

HOSTILE_TITLE = ('Heap buffer overflow when parsing a crafted file allows remote code execution '
                 '<img src=x onerror="window.__pwned=1;alert(1)">')
HOSTILE_BODY = ('A crafted file causes a heap buffer overflow. <script>window.__pwned=1;alert(2)</script> '
                '<a href="javascript:window.__pwned=1">details</a> <svg onload="window.__pwned=1"></svg>')


@contextlib.contextmanager
def serving(app):
    """``app`` served by uvicorn on a free loopback port, in a thread: yields its base URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 120
    while not srv.started and time.time() < deadline:
        time.sleep(0.1)
    assert srv.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(10)


@pytest.fixture
def server(tmp_path, cascade_dir, monkeypatch):
    monkeypatch.setitem(acc.SCRYPT, "n", 2 ** 4)
    hostile = _record(9, "acme/parser", HOSTILE_TITLE, HOSTILE_BODY, url="javascript:window.__pwned=1")
    app, _, store = make_app(tmp_path, cascade_dir, extra_records=[hostile])
    with serving(app) as base:
        yield base, app, store


def test_login_judge_with_the_keyboard_and_retrain_in_a_real_browser(browser, server):  # noqa: F811
    base, app, store = server
    shots = Path(os.environ["TRANSFERLAB_SCREENSHOTS"]) if os.environ.get("TRANSFERLAB_SCREENSHOTS") else None
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    # nothing but our server may be reached (a javascript: or remote link that fired would show up here)
    outside = []
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base) else
               (outside.append(route.request.url), route.abort()))

    page.goto(f"{base}/login")
    page.fill("input[name=name]", "ana")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/queue")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    text = page.inner_text("body")
    assert '<img src=x onerror="window.__pwned=1;alert(1)">' in text  # shown as text
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "queue.png"), full_page=True)

    # keyboard: j selects the first row, Enter opens it
    rows = page.locator("tr[data-href]")
    first = rows.first.get_attribute("data-href")
    page.keyboard.press("j")
    assert "current" in (rows.first.get_attribute("class") or "")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}{first}")
    item_id = int(first.rsplit("/", 1)[1])

    # the hostile item, opened: still inert, its links are not links
    hostile = next(i for i in app.state.vuln.items() if "onerror" in i["title"])
    page.goto(f"{base}/items/{hostile['id']}")
    page.wait_for_timeout(200)  # onerror/onload handlers would have run by now
    assert page.evaluate("typeof window.__pwned") == "undefined" and dialogs == []
    assert "<script>window.__pwned=1;alert(2)</script>" in page.inner_text("pre.body")
    assert page.locator("a[href^='javascript:' i]").count() == 0
    for link in page.locator("main a").all():
        assert link.get_attribute("href").startswith(("/", "http://", "https://"))
    if shots:
        page.screenshot(path=str(shots / "item.png"), full_page=True)

    # judge the first item with the keyboard: v = vulnerability
    page.goto(f"{base}/items/{item_id}")
    page.fill("input[name=comment]", "reproduced locally")
    page.locator("input[name=comment]").blur()  # keys typed in a field are text, not shortcuts
    with page.expect_navigation():
        page.keyboard.press("v")
    deadline = time.time() + 10
    while not store.verdicts() and time.time() < deadline:
        time.sleep(0.1)
    assert [(v["record_id"], v["verdict"], v["reviewer"], v["comment"]) for v in store.verdicts()] == \
        [(item_id, "vulnerability", "ana", "reproduced locally")]

    # an admin's retrain picks the verdict up
    page.goto(f"{base}/queue")
    page.click("header button[type=submit]")  # log out
    page.wait_for_url(f"{base}/login")
    page.fill("input[name=name]", "root")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/queue")
    page.goto(f"{base}/admin")
    with page.expect_navigation():
        page.click("button:has-text('Retrain now')")
    deadline = time.time() + 300
    while time.time() < deadline:
        page.goto(f"{base}/admin")
        if page.inner_text("#retrain-state") != "running":
            break
        time.sleep(1)
    assert page.inner_text("#retrain-state") == "done"
    assert page.inner_text("#retrain-counts").startswith("1 verdict(s): vulnerability 1")
    assert outside == [] and dialogs == []
    context.close()
