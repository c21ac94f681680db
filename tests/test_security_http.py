"""The HTTP boundary against hostile or broken servers: credentials stay on their origin, waits are bounded,
and a slow or huge answer ends in a clear error instead of a hang or a full memory.

Every server here is local (127.0.0.1) and bounded in how many requests it answers and how long it talks.
"""

import gzip
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from replay import LocalServer, ReplayServer, Reply
from transferlab.vuln.sources import SourceError, make_connector
from transferlab.vuln.sources.github import GitHubConnector
from transferlab.vuln.sources.http import HttpClient
from transferlab.vuln.sources.trackers import BugzillaConnector, JiraConnector

ROOT = "/repos/o/r"


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


def client(**kw):
    sleeps = Sleeps()
    http = HttpClient(sleep=sleeps, **kw)
    http.allow_insecure_http = True  # the test servers are plain-HTTP local ones
    return http, sleeps


class Drip(LocalServer):
    """A server whose every answer is ``body``, sent ``step`` bytes every ``pause`` seconds (at most ``limit_s``)."""

    def __init__(self, body: bytes, step: int = 1, pause: float = 0.1, length: bool = True, limit_s: float = 8.0,
                 gzipped: bool = False):
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                outer.requests += 1
                if outer.requests > 5:  # bounded: a client stuck in a loop is not served forever
                    self.send_error(410)
                    return
                self.send_response(200)
                if length:
                    self.send_header("Content-Length", str(len(body)))
                if gzipped:
                    self.send_header("Content-Encoding", "gzip")
                self.end_headers()
                started = time.monotonic()
                try:
                    for i in range(0, len(body), step):
                        if time.monotonic() - started > limit_s:
                            return
                        self.wfile.write(body[i:i + step])
                        self.wfile.flush()
                        if pause:
                            time.sleep(pause)
                except (BrokenPipeError, ConnectionResetError):
                    return

            def log_message(self, *args):
                pass

        self._serve(ThreadingHTTPServer, Handler)


# -- credentials go only to their origin ------------------------------------------------------------------------

def test_github_token_is_not_sent_to_a_link_next_on_another_origin(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "s3cr3t-token")
    with ReplayServer() as other:
        other.add(f"{ROOT}/issues", [])
        with ReplayServer() as home:
            home.add(f"{ROOT}/issues", [], headers={"Link": f'<{other.url}{ROOT}/issues?page=2>; rel="next"'})
            gh = GitHubConnector("o/r", base_url=home.url, client=client()[0], streams=("issues",))
            with pytest.raises(SourceError) as err:
                list(gh.batches(None))
            assert home.requests_to(f"{ROOT}/issues")[0][1]["authorization"] == "Bearer s3cr3t-token"
        assert other.seen == []  # stopped before asking: neither the token nor the run goes elsewhere
    text = str(err.value)
    assert "another origin" in text and other.url in text and "s3cr3t" not in text
    # A checkpoint that holds such a link (written by an older version) is refused the same way.
    resumed = GitHubConnector("o/r", base_url="https://api.github.com", client=client()[0], streams=("issues",))
    with pytest.raises(SourceError, match="another origin"):
        list(resumed.batches({"issues": {"next": f"{other.url}{ROOT}/issues?page=2"}}))


def test_client_sends_its_credential_only_to_the_bound_origin():
    with ReplayServer().add("/x", {}) as home, ReplayServer().add("/x", {}) as other:
        http, _ = client()
        http.bind_credential(home.url, headers={"X-Api-Key": "k3y"}, auth=("user", "pw"))
        http.get(f"{home.url}/x")
        http.get(f"{other.url}/x")
        http.get(f"{home.url.replace('127.0.0.1', 'localhost')}/x")  # same server, another host name
    assert home.seen[0][2]["x-api-key"] == "k3y" and home.seen[0][2]["authorization"].startswith("Basic ")
    for _, _, headers in other.seen + home.seen[1:]:
        assert "x-api-key" not in headers and "authorization" not in headers


@pytest.mark.parametrize("tracker", ["bugzilla", "jira"])
def test_tracker_credential_is_dropped_on_a_cross_origin_redirect(monkeypatch, tracker):
    monkeypatch.setenv("BUGZILLA_API_KEY", "bz-s3cr3t")
    monkeypatch.setenv("JIRA_TOKEN", "jira-s3cr3t")
    path = "/rest/bug" if tracker == "bugzilla" else "/rest/api/2/search"
    empty = {"bugs": []} if tracker == "bugzilla" else {"issues": []}
    with ReplayServer() as other:
        other.add(path, empty)
        with ReplayServer() as home:
            home.add(path, status=302, headers={"Location": "{base}/moved"})  # same origin: the key goes along
            home.add("/moved", status=307, headers={"Location": f"{other.url}{path}"})
            make = BugzillaConnector if tracker == "bugzilla" else JiraConnector
            records = [r for b in make(home.url, client=client()[0]).batches(None) for r in b.records]
    assert records == []
    sent_home = [h for _, _, h in home.seen]
    secret_header = "x-bugzilla-api-key" if tracker == "bugzilla" else "authorization"
    assert len(sent_home) == 2 and all(secret_header in h for h in sent_home)
    assert len(other.seen) == 1
    assert not any("s3cr3t" in value for value in other.seen[0][2].values())
    assert "x-bugzilla-api-key" not in other.seen[0][2] and "authorization" not in other.seen[0][2]


def test_plain_http_with_a_credential_is_refused_unless_allowed(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "s3cr3t-token")
    monkeypatch.setenv("BUGZILLA_API_KEY", "bz-s3cr3t")
    for make in (lambda **kw: GitHubConnector("o/r", base_url="http://127.0.0.1:9", **kw),
                 lambda **kw: BugzillaConnector("http://127.0.0.1:9", **kw),
                 lambda **kw: make_connector("github", repo="o/r", url="http://127.0.0.1:9", **kw)):
        with pytest.raises(SourceError) as err:
            make()
        assert "--allow-insecure-http" in str(err.value) and "s3cr3t" not in str(err.value)
        make(allow_insecure_http=True)  # the operator said so
    monkeypatch.delenv("GITHUB_TOKEN")
    GitHubConnector("o/r", base_url="http://127.0.0.1:9")  # no credential: nothing to leak


def test_cli_ingest_refuses_plain_http_with_a_token(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from transferlab.cli import app

    monkeypatch.setenv("GITHUB_TOKEN", "s3cr3t-token")
    res = CliRunner().invoke(app, ["vuln", "ingest", "--source", "github", "--repo", "o/r", "--url",
                                   "http://127.0.0.1:9", "--db", f"sqlite:///{tmp_path / 'v.db'}"])
    assert res.exit_code != 0 and "--allow-insecure-http" in res.output and "s3cr3t" not in res.output
    assert "--allow-insecure-http" in CliRunner().invoke(app, ["vuln", "ingest", "--help"]).output


# -- bounded retries ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("retry_after", ["0", "nan", "soon", "-3"])
def test_429_with_a_useless_retry_after_is_bounded_and_falls_back_to_the_backoff(retry_after):
    with ReplayServer().add("/x", status=429, headers={"Retry-After": retry_after}, times=50) as server:
        http, sleeps = client(max_retries=3, backoff=1.0)
        with pytest.raises(SourceError) as err:
            http.get(f"{server.url}/x")
    assert len(server.seen) == 4  # one try and three retries, not a loop
    assert "HTTP 429" in str(err.value) and "4 tries" in str(err.value)
    # "0" is obeyed but never below the minimum backoff; the others are unusable, so the backoff doubles
    assert sleeps == ([1.0, 1.0, 1.0] if retry_after == "0" else [1.0, 2.0, 4.0])


def test_every_wait_counts_against_one_budget_and_a_long_one_is_refused():
    with ReplayServer() as server:
        server.add("/x", status=429, headers={"Retry-After": "2"}, times=2)
        server.add("/x", status=503, times=2)
        server.add("/x", {"ok": True})
        http, sleeps = client(max_retries=3)
        with pytest.raises(SourceError, match="HTTP 503 after 4 tries"):
            http.get(f"{server.url}/x")
        assert sleeps == [2.0, 2.0, 1.0]  # rate-limit waits and error backoff share the budget of three
        assert len(server.seen) == 4
    with ReplayServer().add("/x", status=429, headers={"Retry-After": "3600"}) as server:
        with pytest.raises(SourceError, match="rate limited for another 3600 s"):
            client(max_wait=60)[0].get(f"{server.url}/x")
        assert len(server.seen) == 1


def test_post_is_retried_for_the_idempotent_osv_query():
    with ReplayServer() as server:
        server.add("/v1/querybatch", status=503, times=1)
        server.add("/v1/querybatch", {"results": []})
        http, sleeps = client()
        assert http.json(f"{server.url}/v1/querybatch", method="POST", body={"queries": []}) == {"results": []}
    assert len(server.seen) == 2 and sleeps == [1.0]


# -- deadline and size cap ------------------------------------------------------------------------------------

def test_a_server_that_drips_is_cut_at_the_deadline():
    with Drip(b"[" + b" " * 200 + b"]", pause=0.05) as server:
        http, _ = client(timeout=5)
        http.deadline = 1.0
        started = time.monotonic()
        with pytest.raises(SourceError) as err:
            http.json(f"{server.url}/x?api_key=hidden")
        elapsed = time.monotonic() - started
    assert "1 s deadline" in str(err.value) and server.url in str(err.value) and "hidden" not in str(err.value)
    assert elapsed < 4


def test_json_answers_too_deep_or_with_nan_are_read_like_every_other_page():
    """Bugzilla and JIRA answers go through client.json: nested deeper than Python's stack is a SourceError naming
    the URL (not a RecursionError), and NaN reads as null, as on GitHub's pages."""
    deep = "[" * 100_000 + "]" * 100_000
    with ReplayServer() as server:
        server.routes["/deep"] = [Reply(body=deep.encode())]
        server.routes["/nan"] = [Reply(body=b'{"a": NaN, "b": Infinity}')]
        with pytest.raises(SourceError, match="not JSON") as exc:
            client()[0].json(f"{server.url}/deep")
        assert exc.value.where.endswith("/deep")
        assert client()[0].json(f"{server.url}/nan") == {"a": None, "b": None}


@pytest.mark.parametrize("length", [True, False])
def test_an_answer_over_max_bytes_is_refused(length):
    with Drip(b"[" + b"0," * 5000 + b"0]", step=4096, pause=0, length=length) as server:
        http, _ = client()
        http.max_bytes = 1000
        with pytest.raises(SourceError, match="larger than 1000 bytes"):
            http.json(f"{server.url}/x")


def test_a_compressed_bomb_is_measured_after_decompression():
    bomb = gzip.compress(b"[" + b" " * 2_000_000 + b"]")
    with Drip(bomb, step=4096, pause=0, gzipped=True) as server:
        http, _ = client()
        http.max_bytes = 100_000
        with pytest.raises(SourceError, match="larger than 100000 bytes"):
            http.json(f"{server.url}/x")


def test_streamed_files_have_their_own_deadline_and_cap():
    with Drip(b"x" * 300, pause=0.05) as server:
        http, _ = client(timeout=5)
        http.stream_deadline = 1.0
        started = time.monotonic()
        with pytest.raises(SourceError, match="deadline"):
            http.stream(f"{server.url}/hour.json.gz").read()
        assert time.monotonic() - started < 4
    with Drip(b"x" * 50_000, step=4096, pause=0, length=False) as server:
        http, _ = client()
        http.stream_max_bytes = 10_000
        with pytest.raises(SourceError, match="larger than 10000 bytes"):
            http.stream(f"{server.url}/hour.json").read()
        http.stream_max_bytes = 100_000
        assert http.stream(f"{server.url}/hour.json").read() == b"x" * 50_000


def test_a_gh_archive_hour_over_http_is_read_through_the_limited_stream():
    from conftest import drain
    from transferlab.vuln.sources.gharchive import GHArchiveConnector


    event = {"type": "IssuesEvent", "repo": {"name": "o/r"}, "created_at": "2024-01-01T00:00:00Z",
             "payload": {"issue": {"number": 1, "title": "t", "body": "b", "created_at": "2024-01-01T00:00:00Z",
                                   "updated_at": "2024-01-01T00:00:00Z"}}}
    hour = gzip.compress(b"\n".join(json.dumps({**event, "id": str(i)}).encode() for i in range(3000)))
    with Drip(hour, step=8192, pause=0) as server:
        got = drain(GHArchiveConnector([f"{server.url}/2024-01-01-0.json.gz"]))
    assert len(got.records) == 3000 and got.skips == []


# -- a hostile server gets a SourceError, never a traceback ----------------------------------------------------

@pytest.mark.parametrize("location", ["ftp://x/y", "javascript:alert(1)", "http://[::1"])
def test_a_redirect_to_what_we_cannot_follow_is_a_source_error(location):
    with ReplayServer().add("/x", status=302, headers={"Location": location}) as server:
        with pytest.raises(SourceError) as err:
            client()[0].get(f"{server.url}/x")
    assert "cannot request it or follow its redirect" in str(err.value)


def test_a_retry_after_too_long_to_be_a_number_falls_back_to_the_backoff():
    with ReplayServer() as server:
        server.add("/x", status=429, headers={"Retry-After": "9" * 5000}, times=1)
        server.add("/x", {"ok": True})
        http, sleeps = client()
        assert http.json(f"{server.url}/x") == {"ok": True}
    assert sleeps == [1.0]


@pytest.mark.parametrize("link", ["https://[x", "https://user:pw@[x?token=t0k"])
def test_a_link_next_that_is_not_a_url_is_a_source_error(link):
    with ReplayServer() as home:
        home.add(f"{ROOT}/issues", [], headers={"Link": f'<{link}>; rel="next"'})
        gh = GitHubConnector("o/r", base_url=home.url, client=client()[0], streams=("issues",))
        with pytest.raises(SourceError, match="not a valid URL") as err:
            list(gh.batches(None))
    assert "pw" not in str(err.value) and "t0k" not in str(err.value)


# -- GitHub's secondary rate limit ------------------------------------------------------------------------------

SECONDARY = {"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}


def test_a_403_with_retry_after_is_retried_within_the_budget():
    headers = {"Retry-After": "60", "X-RateLimit-Remaining": "4990"}
    with ReplayServer() as server:
        server.add("/x", SECONDARY, status=403, headers=headers, times=1)
        server.add("/x", {"ok": True})
        http, sleeps = client()
        assert http.json(f"{server.url}/x") == {"ok": True}
    assert sleeps == [60.0]
    with ReplayServer().add("/x", SECONDARY, status=403, headers={**headers, "Retry-After": "0"}) as server:
        http, sleeps = client(max_retries=2)
        with pytest.raises(SourceError, match="HTTP 403 rate limited after 3 tries"):
            http.get(f"{server.url}/x")
    assert sleeps == [1.0, 1.0] and len(server.seen) == 3  # bounded, and never below the minimum backoff
    with ReplayServer().add("/x", SECONDARY, status=403, headers=headers) as server:
        with pytest.raises(SourceError, match="rate limited for another 60 s"):
            client(max_wait=30)[0].get(f"{server.url}/x")
        assert len(server.seen) == 1
    with ReplayServer().add("/x", {"message": "Resource not accessible"}, status=403) as server:
        with pytest.raises(SourceError, match="HTTP 403 forbidden"):
            client()[0].get(f"{server.url}/x")
        assert len(server.seen) == 1  # a plain 403 is not retried


# -- the deadline covers connecting and the headers, not only the body ----------------------------------------

class RawDrip(LocalServer):
    """A server that answers every connection with ``head``, then ``drip`` one byte every ``pause`` seconds, for at
    most ``limit_s`` seconds: what http.server cannot do (a stall inside the status line or the headers)."""

    def __init__(self, head: bytes, drip: bytes, pause: float = 0.3, limit_s: float = 6.0):
        import socketserver

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                for _ in range(100):  # the request's head, bounded
                    if self.rfile.readline(65536) in (b"\r\n", b"\n", b""):
                        break
                started = time.monotonic()
                try:
                    self.wfile.write(head)
                    for byte in drip:
                        if time.monotonic() - started > limit_s:
                            return
                        self.wfile.write(bytes([byte]))
                        time.sleep(pause)
                except OSError:
                    return

        self._serve(socketserver.ThreadingTCPServer, Handler)


@pytest.mark.parametrize("head, drip, pause", [
    (b"", b"HTTP/1.1 200 OK\r\n", 0.3),  # the status line, a byte every 0.3 s
    (b"HTTP/1.1 200 OK\r\n", b"X-Slow: " + b"a" * 100, 0.3),  # one header byte every 0.3 s
    (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n", b"[  ]", 3.0),  # one read blocks 3 s
])
def test_a_server_that_stalls_inside_headers_or_one_read_is_cut_at_the_deadline(head, drip, pause):
    with RawDrip(head, drip, pause) as server:
        http, sleeps = client(timeout=5, deadline=1.0)
        started = time.monotonic()
        with pytest.raises(SourceError, match="within the 1 s deadline") as err:
            http.json(f"{server.url}/x?api_key=hidden")
        elapsed = time.monotonic() - started
    assert elapsed < 2.5 and sleeps == []  # a try the deadline cut is not retried
    assert server.url in str(err.value) and "hidden" not in str(err.value)


# -- one item that breaks a record's construction is that item's skip ------------------------------------------

DEEP = json.loads("[" * 600 + "]" * 600)  # below json's own limit; recursive code over it may still fail


def page_server(connector: str, unused) -> tuple[ReplayServer, list[str]]:
    """A server with one page of three items, the second with ``unused`` in a field no record reads, and the ids
    the two others become."""
    server = ReplayServer()
    host = server.url.split("//")[1]
    if connector == "github":
        page = [{"number": n, "title": f"t{n}", "updated_at": "2024-01-01T00:00:00Z"} for n in (1, 2, 3)]
        page[1]["unused"] = unused
        server.add(f"{ROOT}/issues", page)
        return server, ["o/r#1", "o/r#3"]
    if connector == "bugzilla":
        server.add("/rest/bug", {"bugs": [{"id": 1, "summary": "a"}, {"id": 2, "summary": "b", "cf_x": unused},
                                          {"id": 3, "summary": "c"}]})
        server.add("/rest/bug/1/comment", {"bugs": {}})
        return server, [f"{host}/1", f"{host}/3"]
    server.add("/rest/api/2/search", {"issues": [
        {"id": str(n), "key": f"P-{n}", "fields": {"summary": "s", **({"x": unused} if n == 2 else {})}}
        for n in (1, 2, 3)]})
    for n in (1, 2, 3):
        server.add(f"/rest/api/2/issue/{n}/comment", {"comments": [], "total": 0, "startAt": 0})
    return server, [f"{host}/P-1", f"{host}/P-3"]


def read_page(connector: str, server: ReplayServer):
    make = {"github": lambda: GitHubConnector("o/r", base_url=server.url, client=client()[0], streams=("issues",)),
            "bugzilla": lambda: BugzillaConnector(server.url, client=client()[0]),
            "jira": lambda: JiraConnector(server.url, client=client()[0])}[connector]
    with server:
        batches = list(make().batches(None))
    return [r for b in batches for r in b.records], [s for b in batches for s in b.skips]


@pytest.mark.parametrize("connector", ["github", "bugzilla", "jira"])
def test_an_item_nested_600_deep_does_not_stop_its_page(connector):
    server, kept = page_server(connector, DEEP)
    records, skips = read_page(connector, server)
    assert set(kept) <= {r.native_id for r in records}
    assert len(records) + len(skips) == 3 and all(s.location.endswith(" item 1") for s in skips)


@pytest.mark.parametrize("connector", ["github", "bugzilla", "jira"])
def test_any_exception_building_one_record_is_that_items_skip(connector, monkeypatch):
    import transferlab.vuln.records as records_module

    real = records_module.storable

    def unforeseen(value):  # what a record builder may still meet: a shape no accessor foresaw
        if "BOOM" in repr(value):
            raise RecursionError("maximum recursion depth exceeded")
        return real(value)

    monkeypatch.setattr(records_module, "storable", unforeseen)
    server, kept = page_server(connector, "BOOM")
    records, skips = read_page(connector, server)
    assert sorted(r.native_id for r in records) == kept
    assert [s.location.rsplit(" ", 2)[1:] for s in skips] == [["item", "1"]]
    assert "RecursionError" in skips[0].reason
