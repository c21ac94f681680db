"""GitHub, Bugzilla and JIRA connectors against a local server replaying Perceval's recorded payloads."""

import pytest

from conftest import SHARED_DATA, drain
from replay import ReplayServer
from transferlab.vuln.ingest import ingest
from transferlab.vuln.sources import SourceError
from transferlab.vuln.sources.github import GitHubConnector
from transferlab.vuln.sources.http import HttpClient, NotFound
from transferlab.vuln.sources.trackers import BugzillaConnector, JiraConnector
from transferlab.vuln.store import Store

P = SHARED_DATA / "fixtures" / "perceval"
ROOT = "/repos/zhquan_example/repo"


@pytest.fixture(scope="module", autouse=True)
def _fixtures():
    if not P.exists():
        pytest.skip("../shared/data/fixtures is not beside the repository")


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


def client(**kw):
    sleeps = Sleeps()
    # allow_insecure_http: the replay servers are plain-HTTP local ones, and some tests send a token to them
    return HttpClient(sleep=sleeps, backoff=1.0, allow_insecure_http=True, **kw), sleeps


def read_all(connector, checkpoint=None):
    got = drain(connector, checkpoint)
    return got.records, got.skips, got.unchanged, got.checkpoint or checkpoint


def github_server():
    server = ReplayServer()
    server.add(f"{ROOT}/issues", file=P / "github" / "github_request", when={"page": None}, etag='"issues-1"',
               headers={"Link": f'<{{base}}{ROOT}/issues?page=2>; rel="next"'})
    server.add(f"{ROOT}/issues", file=P / "github" / "github_issue_2", when={"page": "2"})
    server.add(f"{ROOT}/issues/comments", status=429, headers={"Retry-After": "7"}, times=1)
    server.add(f"{ROOT}/issues/comments", status=502, times=2)
    server.add(f"{ROOT}/issues/comments", file=P / "github" / "github_issue_comments_1", when={"page": None},
               headers={"Link": f'<{{base}}{ROOT}/issues/comments?page=2>; rel="next"'})
    server.add(f"{ROOT}/issues/comments", file=P / "github" / "github_issue_comments_2", when={"page": "2"})
    server.add(f"{ROOT}/commits", file=P / "github" / "github_request_pull_request_1_commits")
    return server


def test_github_pages_rate_limits_retries_and_etags(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "s3cr3t-token")
    with github_server() as server:
        http, sleeps = client()
        gh = GitHubConnector("zhquan_example/repo", since="2016-01-01", base_url=server.url, client=http)
        records, skips, _, checkpoint = read_all(gh)
        assert skips == []
        assert [(r.kind, r.native_id) for r in records] == [
            ("pull_request", "zhquan_example/repo#1"), ("issue", "zhquan_example/repo#2"),
            ("comment", "zhquan_example/repo#comment-1"), ("comment", "zhquan_example/repo#comment-2"),
            ("commit", "zhquan_example/repo@53b970ee04bbc435842c14a2cbfdd623faf74a65")]
        assert records[2].parent_id == "zhquan_example/repo#1"
        assert sleeps == [7.0, 1.0, 2.0]  # Retry-After, then exponential backoff over two 502s
        query, headers = server.requests_to(f"{ROOT}/issues")[0]
        assert query == {"per_page": "100", "state": "all", "sort": "updated", "direction": "asc",
                         "since": "2016-01-01T00:00:00Z"}
        assert headers["authorization"] == "Bearer s3cr3t-token"
        assert checkpoint["issues"]["next"] is None and checkpoint["issues"]["since"] == "2016-05-15T15:09:29Z"

        # The next daily run asks from the newest item on; an unchanged first page (304) ends the stream.
        server.routes[f"{ROOT}/issues"][0].when = {"page": None, "since": "2016-05-15T15:09:29Z"}
        server.routes[f"{ROOT}/issues"][0].etag = '"issues-2"'
        again = GitHubConnector("zhquan_example/repo", base_url=server.url, client=client()[0],
                                streams=("issues",))
        _, _, _, checkpoint2 = read_all(again, checkpoint)  # learns the new page's ETag
        records3, _, unchanged, _ = read_all(again, checkpoint2)
        assert unchanged == 1 and records3 == []
        assert server.requests_to(f"{ROOT}/issues")[-1][1]["if-none-match"] == '"issues-2"'


def test_github_refused_token_is_a_clear_error_without_the_secret(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "s3cr3t-token")
    with ReplayServer().add(f"{ROOT}/issues", {"message": "Bad credentials"}, status=401) as server:
        gh = GitHubConnector("zhquan_example/repo", base_url=server.url, client=client()[0])
        with pytest.raises(SourceError) as err:
            read_all(gh)
    text = str(err.value)
    assert "HTTP 401 credentials refused: Bad credentials" in text and "GITHUB_TOKEN" in text
    assert "s3cr3t" not in text


def test_github_missing_repository_and_long_rate_limit():
    with ReplayServer() as server:
        with pytest.raises(NotFound, match="404"):
            read_all(GitHubConnector("zhquan_example/repo", base_url=server.url, client=client()[0]))
    with ReplayServer().add(f"{ROOT}/issues", {"message": "API rate limit exceeded"}, status=403,
                            headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "9999999999"}) as server:
        with pytest.raises(SourceError, match="rate limited for another"):
            read_all(GitHubConnector("zhquan_example/repo", base_url=server.url, client=client(max_wait=60)[0]))


def test_github_failure_mid_run_keeps_the_checkpoint_and_a_rerun_completes(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'v.db'}")
    with github_server() as server:
        server.routes[f"{ROOT}/issues/comments"][1].times = 10  # 502s beyond the retries: the run stops there
        gh = GitHubConnector("zhquan_example/repo", base_url=server.url, client=client(max_retries=2)[0])
        report = ingest(gh, store, progress=False)
        assert report.error and "HTTP 502 after 3 tries" in report.error
        assert report.new == 2 and store.count() == 2  # the issues stream was committed before the failure
        server.routes[f"{ROOT}/issues/comments"][1].times = 0
        report2 = ingest(GitHubConnector("zhquan_example/repo", base_url=server.url, client=client()[0]),
                         store, progress=False)
    assert report2.error is None and report2.resumed
    assert store.count() == 5 and store.count(kind="comment") == 2


def bugzilla_server():
    server = ReplayServer()
    server.add("/rest/bug", file=P / "bugzilla" / "bugzilla_rest_bugs.json", when={"offset": "0"})
    server.add("/rest/bug", file=P / "bugzilla" / "bugzilla_rest_bugs_next.json", when={"offset": "2"})
    server.add("/rest/bug/1273442/comment", file=P / "bugzilla" / "bugzilla_rest_bugs_comments.json")
    server.add("/rest/bug/947945/comment", file=P / "bugzilla" / "bugzilla_rest_bugs_comments_empty.json")
    return server


def test_bugzilla_bugs_with_comments_over_pages(monkeypatch):
    monkeypatch.setenv("BUGZILLA_API_KEY", "bz-key")
    with bugzilla_server() as server:
        bz = BugzillaConnector(server.url, since="2016-01-01", page_size=2, client=client()[0])
        records, skips, _, checkpoint = read_all(bz)
        host = server.url.split("//")[1]
        bugs = [r for r in records if r.kind == "bug"]
        assert [r.native_id for r in bugs] == [f"{host}/1273442", f"{host}/1273439", f"{host}/947945"]
        first = bugs[0]
        assert first.title == "License check for SensorWeb back-end" and first.body.startswith("What code is being")
        comments = [r for r in records if r.kind == "comment"]
        assert comments and all(c.parent_id == f"{host}/1273442" for c in comments)
        assert checkpoint["offset"] == 0 and checkpoint["since"] >= "2016-06-07"
        query, headers = server.requests_to("/rest/bug")[0]
        assert query["order"] == "changeddate" and query["last_change_time"] == "2016-01-01T00:00:00Z"
        assert headers["x-bugzilla-api-key"] == "bz-key"


def test_bugzilla_error_payload_is_reported():
    with ReplayServer().add("/rest/bug", file=P / "bugzilla" / "bugzilla_rest_error.json") as server:
        with pytest.raises(SourceError, match="API key authentication is required"):
            read_all(BugzillaConnector(server.url, client=client()[0]))


def test_jira_issues_and_comment_pages():
    server = ReplayServer()
    server.add("/rest/api/2/search", file=P / "jira" / "jira_issues_page_1.json", when={"startAt": "0"})
    server.add("/rest/api/2/search", file=P / "jira" / "jira_issues_page_2.json", when={"startAt": "2"})
    server.add("/rest/api/2/issue/1/comment", file=P / "jira" / "jira_comments_issue_page_1.json",
               when={"startAt": "0"})
    server.add("/rest/api/2/issue/1/comment", file=P / "jira" / "jira_comments_issue_page_2.json",
               when={"startAt": "2"})
    for issue in ("2", "3"):
        server.add(f"/rest/api/2/issue/{issue}/comment", file=P / "jira" / "jira_comments_issue_empty.json")
    with server:
        jira = JiraConnector(server.url, project='HE"LP', since="2016-03-01", page_size=2, client=client()[0])
        records, skips, _, checkpoint = read_all(jira)
        jql = server.requests_to("/rest/api/2/search")[0][0]["jql"]
    issues = [r for r in records if r.kind == "issue"]
    assert [r.native_id.rsplit("/", 1)[1] for r in issues] == ["HELP-6043", "HELP-6042", "HELP-6041"]
    assert issues[0].title == "[Fiware-lab-help] FIWARE Lab Assistance" and issues[0].project == "HELP"
    assert {r.native_id.rsplit("/", 1)[1] for r in records if r.kind == "comment"} == {"10022", "10024"}
    assert jql == 'project = "HE\\"LP" AND updated >= "2016/03/01 00:00" ORDER BY updated ASC'
    assert checkpoint["since"] == "2016-03-03T14:32:47Z"
