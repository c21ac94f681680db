"""File connectors (GH Archive hours, mail archives) on the real fixtures in ../shared/data/fixtures."""

import gzip
import json
from collections import Counter

import pytest

from conftest import SHARED_DATA, drain
from transferlab.vuln.records import Record, extract_references
from transferlab.vuln.sources import SourceError, make_connector
from transferlab.vuln.sources.gharchive import GHArchiveConnector
from transferlab.vuln.sources.mail import MailConnector

FIXTURES = SHARED_DATA / "fixtures"
EVENTS = FIXTURES / "github_events"
PERCEVAL = FIXTURES / "perceval"


@pytest.fixture(scope="module", autouse=True)
def _fixtures():
    if not FIXTURES.exists():
        pytest.skip("../shared/data/fixtures is not beside the repository")


def read_all(connector, checkpoint=None):
    got = drain(connector, checkpoint)
    return got.records, got.skips, got.filtered, got.checkpoint


def test_references_are_found_and_normalised():
    refs = extract_references("Fixes cve-2021-44228 (see CVE-2021-44228, GHSA-JFH8-C2JP-5V3Q) and CWE-079: "
                              "https://example.org/advisory.html. Also CVE-99-1 is not an id.")
    assert refs["cve"] == ["CVE-2021-44228"]
    assert refs["ghsa"] == ["GHSA-jfh8-c2jp-5v3q"]
    assert refs["cwe"] == ["CWE-79"]
    assert refs["urls"] == ["https://example.org/advisory.html"]
    assert extract_references("nothing here") == {}


def test_record_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown record kind"):
        Record(source="github", connector="x", project="a/b", kind="tweet", native_id="1")


def expected_from_events():
    """Count by kind straight from the event JSON, independently of the connector's code."""
    counts, idents = Counter(), set()
    for path in sorted(EVENTS.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            event = json.loads(line)
            kind, repo, p = event["type"], event["repo"]["name"], event["payload"]
            if kind == "PushEvent":
                for c in p["commits"]:
                    counts["commit"] += 1
                    idents.add(f"{repo}@{c['sha']}")
            elif kind in ("IssuesEvent", "IssueCommentEvent"):
                item = p["issue"]
                counts["pull_request" if "pull_request" in item else "issue"] += 1
                idents.add(f"{repo}#{item['number']}")
                if kind == "IssueCommentEvent":
                    counts["comment"] += 1
                    idents.add(f"{repo}#comment-{p['comment']['id']}")
            elif kind in ("PullRequestEvent", "PullRequestReviewCommentEvent"):
                counts["pull_request"] += 1
                idents.add(f"{repo}#{p['pull_request']['number']}")
                if kind == "PullRequestReviewCommentEvent":
                    counts["comment"] += 1
                    idents.add(f"{repo}#comment-{p['comment']['id']}")
    return counts, idents


def test_gharchive_reads_every_kept_event():
    records, skips, filtered, checkpoint = read_all(GHArchiveConnector(EVENTS))
    counts, idents = expected_from_events()
    assert Counter(r.kind for r in records) == counts
    assert {r.native_id for r in records} == idents
    assert skips == []
    assert filtered == 19  # CreateEvent, WatchEvent, ForkEvent, DeleteEvent: nothing said in words
    assert all(v == {"done": 30, "complete": True} for v in checkpoint["files"].values())
    pr = next(r for r in records if r.native_id == "berliCRM/berlicrm#111")
    assert pr.kind == "pull_request" and pr.title.startswith("Invalidate OPCache")
    assert pr.url == "https://github.com/berliCRM/berlicrm/pull/111" and pr.raw["type"] == "PullRequestEvent"
    comment = next(r for r in records if r.kind == "comment" and r.project == "alanraso/teste-probot")
    assert comment.parent_id == "alanraso/teste-probot#15" and "Pull Request" in comment.body


def test_gharchive_repository_filter_is_case_insensitive():
    records, _, filtered, _ = read_all(GHArchiveConnector(EVENTS, repos=["BERLICRM/BerliCRM"]))
    assert {r.project for r in records} == {"berliCRM/berlicrm"}
    events = [json.loads(x) for f in sorted(EVENTS.glob("*.jsonl")) for x in f.read_text().splitlines()]
    theirs = [e for e in events if e["repo"]["name"] == "berliCRM/berlicrm"]
    assert len(events) == 60 and theirs and filtered == 60 - len(theirs)


def test_gharchive_bad_lines_are_counted_with_their_place(tmp_path):
    good = (EVENTS / "github_public_events_2018-11-14.jsonl").read_text().splitlines()
    hour = tmp_path / "2018-11-14-12.json.gz"
    with gzip.open(hour, "wt") as f:
        f.write("\n".join([good[2], "{not json", '{"type": "IssuesEvent", "repo": {"name": "a/b"}, "payload": {}}',
                           '["a list"]', good[3]]) + "\n")
    records, skips, _, _ = read_all(GHArchiveConnector(hour))
    assert [s.location for s in skips] == [f"{hour}:2", f"{hour}:3", f"{hour}:4"]  # file:line
    assert "not a JSON object" in skips[0].reason and "without the fields" in skips[1].reason
    assert "not a GitHub event" in skips[2].reason


def test_gharchive_truncated_download_resumes_where_it_broke(tmp_path):
    lines = (EVENTS / "github_public_events_2018-11-14.jsonl").read_bytes()
    full = gzip.compress(lines)
    hour = tmp_path / "2018-11-14-12.json.gz"
    hour.write_bytes(full[: len(full) * 2 // 3])
    first, skips, _, checkpoint = read_all(GHArchiveConnector(hour, batch_size=5))
    assert len(skips) == 1 and "rerun once it is complete" in skips[0].reason
    state = checkpoint["files"][str(hour)]
    assert not state["complete"] and 0 < state["done"] < 30
    hour.write_bytes(full)  # the download finished
    rest, skips2, _, checkpoint2 = read_all(GHArchiveConnector(hour, batch_size=5), checkpoint)
    everything, _, _, _ = read_all(GHArchiveConnector(hour))
    assert skips2 == [] and checkpoint2["files"][str(hour)] == {"done": 30, "complete": True}
    assert [r.native_id for r in first + rest] == [r.native_id for r in everything]


def test_gharchive_missing_path_is_an_error(tmp_path):
    with pytest.raises(SourceError, match="no such file or folder"):
        read_all(GHArchiveConnector(tmp_path / "nope"))
    with pytest.raises(SourceError, match="no gharchive files"):
        read_all(GHArchiveConnector(tmp_path))


def test_mbox_messy_messages_are_kept_and_decoded():
    records, skips, _, _ = read_all(MailConnector(PERCEVAL / "mbox"))
    assert skips == []
    assert len(records) == 14  # every message in the seven archives
    assert all(r.raw["message"].count("\n") > 0 for r in records)  # each kept whole, byte for byte
    iso = next(r for r in records if r.title.endswith("Remittance Advice"))
    assert iso.author == "Lucía Charlie <lucíacharlie@wellsfargo.com>"  # 8-bit header beside an RFC 2047 word
    no_id = [r for r in records if r.native_id.startswith("sha256:")]
    assert len(no_id) == 1 and no_id[0].title == "[List-name] Protocol Buffers anyone?"
    no_date = [r for r in records if r.project == "List-name" and r.created_at.hour == 8]
    assert no_date, "a message without a Date takes the time of its mbox 'From ' line"
    multipart = next(r for r in records if r.native_id.startswith("019801ca633f"))
    assert "Committer vote" in multipart.title and "Content-Type" not in multipart.body and multipart.body


def test_pipermail_addresses_are_deobfuscated_and_gzip_archives_read(tmp_path):
    archive = tmp_path / "2016-March.txt.gz"
    archive.write_bytes(gzip.compress((PERCEVAL / "pipermail" / "pipermail_2016_march.mbox").read_bytes()))
    records, _, _, _ = read_all(MailConnector(archive, kind="pipermail"))
    (mail,) = records
    assert mail.author == "Germán Poo-Caamaño <gpoo@example.com>"
    assert mail.project == "Metrics-grimoire" and mail.connector == "pipermail"
    assert mail.references["urls"][0] == "https://github.com/MetricsGrimoire/MailingListStats/issues/35"


def test_oss_security_post_carries_its_list_and_thread():
    records, _, _, _ = read_all(MailConnector(FIXTURES / "mailing_lists"))
    assert {r.project for r in records} == {"oss-security.lists.openwall.com"}
    reply = next(r for r in records if r.title.startswith("Re:"))
    assert reply.parent_id and reply.kind == "mail"


def test_make_connector_says_what_is_missing():
    with pytest.raises(SourceError, match="needs --repo"):
        make_connector("github")
    with pytest.raises(SourceError, match="unknown source 'twitter'"):
        make_connector("twitter")
    with pytest.raises(SourceError, match="owner/name"):
        make_connector("github", repo="justaname")


def test_cli_ingest_twice_duplicates_nothing_and_reports_bad_input(tmp_path):
    from typer.testing import CliRunner

    from transferlab.cli import app

    db = f"sqlite:///{tmp_path / 'v.db'}"
    runner = CliRunner()
    first = runner.invoke(app, ["vuln", "ingest", "--source", "gharchive", "--path", str(EVENTS), "--db", db, "--json"])
    assert first.exit_code == 0, first.output
    assert '"new": 55' in first.output and '"skipped": 0' in first.output
    again = runner.invoke(app, ["vuln", "ingest", "--source", "gharchive", "--path", str(EVENTS), "--db", db,
                                "--restart", "--json"])
    assert '"new": 0' in again.output and '"unchanged": 58' in again.output
    missing = runner.invoke(app, ["vuln", "ingest", "--source", "github", "--db", db])
    assert missing.exit_code == 2 and "needs --repo owner/name" in missing.output
