"""The service's early-warning endpoints (serve/vuln_api.py) on a real small cascade and store: the items of a scan,
filtered and paged most probable first; an item whole; verdicts stored under the authenticated account only;
scoring through the cascade; hostile text returned as data, links only for http(s)."""

import re
from datetime import datetime, timezone

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402
from vuln_data import write_osv  # noqa: E402

from transferlab.serve import accounts as acc  # noqa: E402
from transferlab.serve.accounts import Accounts  # noqa: E402
from transferlab.serve.app import Settings, create_app  # noqa: E402
from transferlab.serve.vuln_api import VulnConfig, VulnService  # noqa: E402
from transferlab.vuln.advisories import AdvisoryIndex  # noqa: E402
from transferlab.vuln.cascade import Cascade  # noqa: E402
from transferlab.vuln.mapping import RepositoryMapper  # noqa: E402
from transferlab.vuln.records import Record  # noqa: E402
from transferlab.vuln.sources.base import Batch  # noqa: E402
from transferlab.vuln.store import Store  # noqa: E402

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)


def _record(n, project, title, body="", kind="issue", when=T0, url=None):
    return Record(source="github" if "/" in project else "mail", connector="test", project=project, kind=kind,
                  native_id=f"{project}#{n}", url=url or f"https://github.com/{project}/issues/{n}", title=title,
                  body=body, author="alice", created_at=when, updated_at=when)


PASSWORD = "a long enough password"


def make_app(tmp_path, cascade_dir, *, auth_reads=False, extra_records=(), models=None):
    """A service over a small store and the session's cascade: (app, ana's token, store).  Users: ana (reviewer) and
    root (admin), both with PASSWORD."""
    store = Store.open(f"sqlite:///{tmp_path / 'v.db'}")
    store.write_batch("t", Batch(records=[
        _record(1, "acme/parser", "Heap buffer overflow when parsing a crafted file allows remote code execution",
                "A crafted file causes a heap buffer overflow. <script>alert(1)</script>",
                url="javascript:alert(document.cookie)"),
        _record(2, "acme/parser", "Add a dark theme to the settings page"),
        _record(3, "acme/parser", "SQL injection in the search parameter lets attackers read the database",
                "Fixed upstream, see CVE-2024-1111.", when=T0.replace(month=5)),
        _record(4, "other/lib", "Authentication bypass through a crafted cookie gives admin access"),
        *extra_records,
    ]))
    (tmp_path / "requirements.txt").write_text("acme-parser==1.2.0\nother-lib==0.1\n")
    (tmp_path / "map.toml").write_text('[PyPI."acme-parser"]\nprojects = ["acme/parser"]\n'
                                       '[PyPI."other-lib"]\nprojects = ["other/lib"]\n')
    write_osv(tmp_path / "osv")
    config = VulnConfig(manifests=[str(tmp_path / "requirements.txt")], retrain_dir=str(tmp_path / "retrained"))
    svc = VulnService(store, Cascade.load(cascade_dir), config,
                      mapper=RepositoryMapper(tmp_path / "map.toml", cache_file=tmp_path / "c.json", online=False),
                      advisories=AdvisoryIndex.from_directory(tmp_path / "osv"))
    accounts = Accounts(store)
    accounts.add_user("ana", "reviewer", PASSWORD)
    accounts.add_user("root", "admin", PASSWORD)
    _, token = accounts.create_token("ana")
    return (create_app(Settings(rate=0, auth_reads=auth_reads), models=models or {}, accounts=accounts, vuln=svc),
            token, store)


@pytest.fixture(params=[False], ids=["open-reads"])
def service(request, tmp_path, cascade_dir, monkeypatch):
    monkeypatch.setitem(acc.SCRYPT, "n", 2 ** 4)
    app, token, store = make_app(tmp_path, cascade_dir, auth_reads=request.param)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, token, store


def test_items_are_the_scan_most_probable_first_with_filters_and_pages(service):
    c, _, _ = service
    body = c.get("/v1/vuln/items").json()
    items = body["items"]
    titles = [i["title"] for i in items]
    assert any(t.startswith("Heap") for t in titles) and not any("dark theme" in t for t in titles)
    assert [i["probability"] for i in items] == sorted((i["probability"] for i in items), reverse=True)
    sql = next(i for i in items if i["title"].startswith("SQL"))
    heap = next(i for i in items if i["title"].startswith("Heap"))
    assert sql["status"] == "disclosed" and sql["advisory"] == "GHSA-aaaa-bbbb-cccc"
    assert heap["status"] == "early-warning" and heap["dependencies"][0]["package"] == "acme-parser"
    assert heap["url"] is None  # a javascript: link is never handed on
    only = c.get("/v1/vuln/items", params={"status": "early-warning", "package": "ACME-parser"}).json()["items"]
    assert [i["id"] for i in only] == [heap["id"]]
    assert c.get("/v1/vuln/items", params={"ecosystem": "npm"}).json()["items"] == []
    assert [i["id"] for i in c.get("/v1/vuln/items", params={"since": "2024-04-01"}).json()["items"]] == [sql["id"]]
    # pages of one, following next_cursor, give the whole list once, in order
    seen, cursor = [], None
    while True:
        page = c.get("/v1/vuln/items", params={"limit": 1, **({"cursor": cursor} if cursor else {})}).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [i["id"] for i in items]
    r = c.get("/v1/vuln/items", params={"cursor": "not-a-cursor"})
    assert r.status_code == 422 and r.json()["error"]["where"] == "cursor"
    assert c.get("/v1/vuln/items", params={"status": "maybe"}).status_code == 422
    whole = c.get(f"/v1/vuln/items/{heap['id']}").json()
    assert "<script>alert(1)</script>" in whole["body"]  # data, as written: the pages escape it where shown
    assert whole["evidence"] and whole["stage1"] > 0 and whole["verdicts"] == []
    assert c.get("/v1/vuln/items/99999").status_code == 404


def test_verdicts_need_an_account_and_are_stored_under_it(service):
    c, token, store = service
    heap = next(i for i in c.get("/v1/vuln/items").json()["items"] if i["title"].startswith("Heap"))
    url = f"/v1/vuln/items/{heap['id']}/verdict"
    assert c.post(url, json={"verdict": "vulnerability"}).status_code == 401
    assert c.post(url, json={"verdict": "vulnerability"},
                  headers={"Authorization": "Bearer tlk_0_wrong"}).status_code == 401
    auth = {"Authorization": f"Bearer {token}"}
    r = c.post(url, json={"verdict": "vulnerability", "reviewer": "mallory"}, headers=auth)
    assert r.status_code == 422  # the reviewer is the account, never a field of the request
    assert c.post(url, json={"verdict": "maybe"}, headers=auth).status_code == 422
    r = c.post(url, json={"verdict": "vulnerability", "comment": "confirmed <b>upstream</b>"}, headers=auth)
    assert r.status_code == 201 and r.json()["verdict"]["reviewer"] == "ana"
    stored = store.verdicts()
    assert [(v["record_id"], v["verdict"], v["reviewer"]) for v in stored] == [(heap["id"], "vulnerability", "ana")]
    assert c.get("/v1/vuln/items", params={"verdict": "none"}).json()["items"] and \
        [i["id"] for i in c.get("/v1/vuln/items", params={"verdict": "vulnerability"}).json()["items"]] == [heap["id"]]
    assert c.post("/v1/vuln/items/99999/verdict", json={"verdict": "not-security"}, headers=auth).status_code == 404


def test_score_runs_texts_through_the_cascade(service):
    c, _, _ = service
    texts = ["heap buffer overflow when parsing a crafted file allows remote code execution. the logo is fine.",
             "add a dark theme to the settings page"]
    r = c.post("/v1/vuln/score", json={"texts": texts})
    assert r.status_code == 200
    res = r.json()["results"]
    assert res[0]["stage1"] > res[1]["stage1"] and res[0]["flagged"] and not res[1]["flagged"]
    assert res[0]["evidence"] and "overflow" in res[0]["evidence"][0]
    assert c.post("/v1/vuln/score", json={"texts": []}).status_code == 422
    assert "/v1/vuln/items/{item_id}/verdict" in c.get("/openapi.json").json()["paths"]
    metrics = c.get("/metrics").text
    assert 'transferlab_items_flagged{status="early-warning"} 2.0' in metrics
    assert 'transferlab_items_flagged{status="disclosed"} 1.0' in metrics


# ------------------------------------------------------------------------------------------------ triage pages
def login(c, name="ana", password=PASSWORD):
    page = c.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return c.post("/login", data={"name": name, "password": password, "csrf": token, "next": "/queue"},
                  follow_redirects=False)


def csrf_of(html):
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_pages_render_hostile_text_inert_and_work_without_javascript(service):
    c, _, _ = service
    queue = c.get("/queue")
    assert queue.status_code == 200 and "Heap buffer overflow" in queue.text and "dark theme" not in queue.text
    assert "<svg" in queue.text  # flags per day per package
    heap = next(i for i in c.get("/v1/vuln/items").json()["items"] if i["title"].startswith("Heap"))
    page = c.get(f"/items/{heap['id']}")
    html = page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "javascript:" not in html  # the record's javascript: link is not a link
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/triage.js" defer>']  # no inline script
    assert "style=" not in html and "<mark>" in html  # evidence highlighted, no inline style for the CSP to block
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "Log in</a> to judge" in html  # anonymous: no verdict form
    assert c.get("/static/triage.js").status_code == 200
    assert c.get("/queue", params={"package": "acme-parser", "status": "disclosed"}).text.count("data-href") == 1


def test_login_session_csrf_and_a_verdict_by_the_logged_in_reviewer(service):
    c, _, store = service
    res = c.post("/login", data={"name": "ana", "password": PASSWORD, "csrf": "forged"}, follow_redirects=False)
    assert res.status_code == 403
    assert login(c, password="wrong password here").status_code == 401
    res = login(c)
    assert res.status_code == 303 and res.headers["location"] == "/queue"
    cookie = res.headers["set-cookie"]
    assert "tl_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    sid = c.cookies.get("tl_session")
    assert sid not in repr(c.app.state.sessions._by_hash)  # kept only as its hash
    heap = next(i for i in c.get("/v1/vuln/items").json()["items"] if i["title"].startswith("Heap"))
    page = c.get(f"/items/{heap['id']}").text
    assert 'value="vulnerability"' in page
    url = f"/items/{heap['id']}/verdict"
    assert c.post(url, data={"verdict": "vulnerability"}, follow_redirects=False).status_code == 403  # no CSRF
    res = c.post(url, data={"verdict": "vulnerability", "comment": "=cmd|' /C calc'!A0", "csrf": csrf_of(page)},
                 follow_redirects=False)
    assert res.status_code == 303
    assert [(v["verdict"], v["reviewer"]) for v in store.verdicts()] == [("vulnerability", "ana")]
    again = c.get(f"/items/{heap['id']}").text
    assert "Earlier verdicts" in again and "ana" in again
    assert heap["id"] not in [int(x) for x in re.findall(r'data-href="/items/(\d+)"', c.get("/queue").text)]
    exported = c.get("/export.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    assert "'=cmd|' /C calc'!A0" in exported.text  # a formula is shown as text in a spreadsheet
    res = c.post("/logout", data={"csrf": csrf_of(again)}, follow_redirects=False)
    assert res.status_code == 303
    assert 'value="vulnerability"' not in c.get(f"/items/{heap['id']}").text  # logged out: no form


@pytest.mark.parametrize("service", [True], indirect=True, ids=["auth-reads"])
def test_auth_reads_sends_pages_to_login(service):
    c, _, _ = service
    res = c.get("/queue", follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"].startswith("/login")
    assert login(c).status_code == 303 and c.get("/queue").status_code == 200


def test_retrain_is_for_admins_and_learns_from_the_verdicts(service):
    import time

    c, token, store = service
    heap = next(i for i in c.get("/v1/vuln/items").json()["items"] if i["title"].startswith("Heap"))
    auth = {"Authorization": f"Bearer {token}"}
    c.post(f"/v1/vuln/items/{heap['id']}/verdict", json={"verdict": "vulnerability"}, headers=auth)
    assert c.post("/v1/admin/retrain", headers=auth).status_code == 403  # a reviewer
    assert c.post("/v1/admin/retrain").status_code == 401
    login(c)  # ana, a reviewer: the admin page is not hers
    assert c.get("/admin").status_code == 403
    c.post("/logout", data={"csrf": csrf_of(c.get("/queue").text)})
    login(c, name="root")
    page = c.get("/admin").text
    assert "Retrain now" in page
    assert c.post("/admin/retrain", data={}, follow_redirects=False).status_code == 403  # no CSRF token
    res = c.post("/admin/retrain", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert res.status_code == 303
    deadline = time.time() + 300
    while c.app.state.vuln.retrain_job.get("state") == "running" and time.time() < deadline:
        time.sleep(0.5)
    job = c.app.state.vuln.retrain_job
    assert job["state"] == "done", job
    assert job["by"] == "root" and job["report"]["counts"]["verdicts"] == 1
    assert job["report"]["counts"]["by_verdict"]["vulnerability"] == 1
    assert "1 verdict(s)" in c.get("/admin").text
