"""Issue 13: one bad record never stops ingestion, and nothing is lost or written twice.

Hostile events are put among the real GH Archive fixture events (the "good" part); the good ones must be stored,
the hostile ones stored in a storable form or skipped alone with their file:line, the checkpoint must advance and
a rerun must read nothing new.  Store cases run on SQLite and PostgreSQL (``db_url``).
"""

import copy
import gzip
import json
import math
import tracemalloc
from datetime import datetime, timezone

import pytest

from conftest import SHARED_DATA, drain
from transferlab.vuln.ingest import ingest
from transferlab.vuln.records import Record, parse_time
from transferlab.vuln.sources.base import Batch, Skip
from transferlab.vuln.sources.gharchive import GHArchiveConnector
from transferlab.vuln.sources.mail import MailConnector
from transferlab.vuln.store import Store

FIXTURES = SHARED_DATA / "fixtures"
EVENTS = FIXTURES / "github_events"
HOUR_A = EVENTS / "github_public_events_2018-11-14.jsonl"
HOUR_B = EVENTS / "github_public_events_2018-11-14_b.jsonl"
MBOX = FIXTURES / "mailing_lists" / "oss-security-sample.mbox"
T0 = datetime(2024, 1, 1, 12, tzinfo=timezone.utc)


@pytest.fixture(scope="module", autouse=True)
def _fixtures():
    if not FIXTURES.exists():
        pytest.skip("../shared/data/fixtures is not beside the repository")


def good_lines() -> list[str]:
    return HOUR_A.read_text(encoding="utf-8").splitlines()


def issue_event(number: int, **issue) -> dict:
    """An IssuesEvent shaped like the fixture's, with ``issue`` fields overridden."""
    template = next(json.loads(line) for line in good_lines() if '"IssuesEvent"' in line)
    event = copy.deepcopy(template)
    event["repo"]["name"] = "hostile/repo"
    event["payload"]["issue"].update(number=number, **issue)
    return event


def hostile_events() -> dict[str, str]:
    """name -> one JSON line.  json.dumps escapes lone surrogates and NUL as \\ud800 and \\u0000, as GH Archive does."""
    nul_actor = issue_event(2, body="before\x00after")
    nul_actor["actor"]["login"] = "eve\x00"
    nan = issue_event(6, title="nan payload")
    nan["payload"]["score"] = float("nan")
    repo_string = issue_event(9, title="repo as a string")
    repo_string["repo"] = "hostile/repo"
    long_repo = issue_event(8, title="long repository name")
    long_repo["repo"]["name"] = "hostile/" + "r" * 700
    return {
        "surrogate": json.dumps(issue_event(1, title="lone \ud800 surrogate")),
        "nul": json.dumps(nul_actor),
        "title_list": json.dumps(issue_event(3, title=["a", "list"])),
        "user_string": json.dumps(issue_event(4, title="user as a string", user="eve")),
        "numeric_time": json.dumps(issue_event(5, title="far future", created_at=1e20, updated_at=1e20)),
        "nan": json.dumps(nan),
        "huge_int": '{"type": "IssuesEvent", "repo": {"name": "hostile/repo"}, "x": ' + "9" * 5000 + "}",
        "long_repo": json.dumps(long_repo),
        "repo_string": json.dumps(repo_string),
    }


def hostile_hour(tmp_path, extra: dict[str, str] | None = None):
    """The fixture hour with a hostile line after every third good line; returns (path, {name: line number})."""
    lines, places, bad = [], {}, list({**hostile_events(), **(extra or {})}.items())
    for i, good in enumerate(good_lines()):
        lines.append(good)
        if i % 3 == 2 and bad:
            name, line = bad.pop(0)
            lines.append(line)
            places[name] = len(lines)
    for name, line in bad:
        lines.append(line)
        places[name] = len(lines)
    path = tmp_path / "2018-11-14-12.json.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8")))
    return path, places


def _stored(store):
    return {r["native_id"]: r for r in store.iter_records()}


def test_hostile_events_never_stop_a_gharchive_ingest(db_url, tmp_path):
    path, places = hostile_hour(tmp_path)
    store = Store.open(db_url)
    report = ingest(GHArchiveConnector(path, batch_size=7), store, progress=False)
    assert report.error is None

    clean = {r.native_id for r in drain(GHArchiveConnector(HOUR_A)).records}
    rows = _stored(store)
    assert clean <= set(rows)  # every good record of the hour is stored

    # made storable and kept, with what was wrong repaired
    assert rows["hostile/repo#1"]["title"] == "lone \ufffd surrogate"
    assert rows["hostile/repo#2"]["body"] == "beforeafter"
    assert rows["hostile/repo#2"]["raw"]["actor"]["login"] == "eve"
    assert rows["hostile/repo#5"]["created_at"] is None and rows["hostile/repo#5"]["updated_at"] is None
    assert rows["hostile/repo#6"]["raw"]["payload"]["score"] in (None, "nan", "NaN")
    # anything else is either stored or a skip of its own, at its file:line
    skipped = {s["location"]: s for s in store.skipped()}
    long_ids = [n for n in rows if n.startswith("hostile/rrrr")]  # a connector may also refuse such a name
    assert long_ids or f"{path}:{places['long_repo']}" in skipped
    for n in long_ids:
        assert len(n) <= 512 and len(rows[n]["project"]) <= 512
        assert rows[n]["raw"]["repo"]["name"] == "hostile/" + "r" * 700  # the original is kept
    for name in ("title_list", "user_string", "huge_int", "repo_string"):
        where = f"{path}:{places[name]}"
        number = {"title_list": 3, "user_string": 4, "repo_string": 9}.get(name)
        assert where in skipped or f"hostile/repo#{number}" in rows, name
    assert report.skipped == len(store.skipped())

    # the checkpoint moved past everything, so a rerun (and a restart) reads nothing new
    (state,) = store.checkpoint(GHArchiveConnector(path).key)["files"].values()
    assert state["complete"] and state["done"] == len(good_lines()) + len(places)
    assert ingest(GHArchiveConnector(path), store, progress=False).read == 0
    again = ingest(GHArchiveConnector(path), store, progress=False, restart=True)
    assert again.error is None and again.new == 0


def test_a_repository_given_as_a_string_is_not_fatal_when_filtering_by_repository(tmp_path):
    path, places = hostile_hour(tmp_path)
    got = drain(GHArchiveConnector(path, repos=["hostile/repo"]))
    assert {r.native_id for r in got.records} >= {"hostile/repo#1", "hostile/repo#2"}
    assert f"{path}:{places['repo_string']}" in {s.location for s in got.skips} or got.filtered
    assert all(state["complete"] for state in got.checkpoint["files"].values())


def test_an_over_long_message_id_is_bounded_and_kept_whole_in_the_payload(db_url, tmp_path):
    long_id = "x" * 600 + "@example.org"
    other_long = "x" * 600 + "@example.com"  # same first 512 characters: identities must stay apart
    text = MBOX.read_bytes()
    extra = b"".join(
        b"From eve@example.org Thu Jan 24 09:30:45 2019\nFrom: eve@example.org\nSubject: long id \x00 " + n +
        b"\nMessage-ID: <" + mid.encode() + b">\nDate: Thu, 24 Jan 2019 09:30:45 +0000\n\nbody " + n + b"\n\n"
        for n, mid in ((b"1", long_id), (b"2", other_long)))
    archive = tmp_path / "list.mbox"
    archive.write_bytes(text + b"\n" + extra)
    store = Store.open(db_url)
    report = ingest(MailConnector(archive), store, progress=False)
    assert report.error is None and report.skipped == 0
    rows = [r for r in store.iter_records() if r["title"].startswith("long id")]
    assert len(rows) == 2 and store.count() == 4
    assert all(len(r["native_id"]) <= 512 for r in rows) and rows[0]["native_id"] != rows[1]["native_id"]
    assert {r["title"] for r in rows} == {"long id  1", "long id  2"}  # NUL removed
    assert any(long_id in json.dumps(r["raw"]) for r in rows)
    assert ingest(MailConnector(archive), store, progress=False).read == 0


def test_one_unstorable_record_is_skipped_alone_and_the_batch_commits(db_url):
    store = Store.open(db_url)

    def rec(n, raw):
        return Record(source="github", connector="t", project="a/b", kind="issue", native_id=f"a/b#{n}",
                      title=f"t{n}", created_at=T0, updated_at=T0, raw=raw)

    bad = rec(2, {"not json": {1, 2}})  # a set cannot be serialised by any database driver: a real DB error
    written = store.write_batch("k", Batch(records=[rec(1, {}), bad, rec(3, {})], skips=[Skip("f:9", "other")],
                                           checkpoint={"page": 2}))
    assert sorted(r["native_id"] for r in store.iter_records()) == ["a/b#1", "a/b#3"]
    assert written.new == 2 and store.checkpoint("k") == {"page": 2}
    locations = {s["location"]: s["reason"] for s in store.skipped("k")}
    assert "f:9" in locations and "github a/b#2" in locations and locations["github a/b#2"]
    assert [s.location for s in written.rejected] == ["github a/b#2"]


def test_a_record_rejected_by_the_database_is_skipped_at_its_file_line(db_url, tmp_path, monkeypatch):
    """The place of a rejected record is where its connector read it."""

    class Poisoned(GHArchiveConnector):
        def _read_unit(self, name, number, unit, batch):
            first = len(batch.records)
            super()._read_unit(name, number, unit, batch)
            for r in batch.records[first:]:
                if r.native_id == "hostile/repo#1":
                    r.raw = {"poison": {1}}  # no driver can serialise a set

    path, places = hostile_hour(tmp_path)
    store = Store.open(db_url)
    report = ingest(Poisoned(path), store, progress=False)
    assert report.error is None
    (skip,) = [s for s in store.skipped() if s["location"] == f"{path}:{places['surrogate']}"]
    assert "refused" in skip["reason"] and "set" in skip["reason"]
    rows = _stored(store)
    assert "hostile/repo#1" not in rows and "hostile/repo#2" in rows and len(rows) > 30


@pytest.mark.parametrize("value", [1e20, -1e20, 10 ** 30, float("nan"), float("inf"), -math.inf, "1e20",
                                   "99999-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", [2020, 1, 1],
                                   {"t": 1}, True, b"2020", "Mon, 99 Foo 2020 25:61:00 +9999"])
def test_parse_time_never_raises_on_nonsense(value):
    assert parse_time(value) is None


def test_parse_time_still_reads_real_times():
    assert parse_time("2018-11-14T12:19:10Z") == datetime(2018, 11, 14, 12, 19, 10, tzinfo=timezone.utc)
    assert parse_time(1542197950) == datetime(2018, 11, 14, 12, 19, 10, tzinfo=timezone.utc)
    assert parse_time("Wed, 7 Dec 2016 01:46:22 +0530") == datetime(2016, 12, 6, 20, 16, 22, tzinfo=timezone.utc)


def test_storable_text_is_made_in_one_place():
    r = Record(source="github", connector="t", project="a/\x00b", kind="issue", native_id="n\ud800" + "x" * 600,
               title="t\ud83d", body="b\x00", author="\x00eve", labels=["l\x00", 3],
               raw={"k\x00": ["v\udcff", {"z": float("inf")}]})
    assert (r.project, r.title, r.body, r.author, r.labels) == ("a/b", "t\ufffd", "b", "eve", ["l", "3"])
    assert r.raw["k"][0] == "v\ufffd" and r.raw["k"][1]["z"] != float("inf")
    assert len(r.native_id) <= 512 and r.native_id.startswith("n\ufffdxxx")
    assert "n\ufffd" + "x" * 600 in json.dumps(r.raw, ensure_ascii=False)  # the original identity is kept


# ---------------------------------------------------------------------- record size cap
def drain_measuring_memory(connector):
    """What the connector yields, and the peak of memory Python allocated meanwhile."""
    tracemalloc.start()
    try:
        return drain(connector), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_record_over_the_size_cap_is_skipped_without_being_held(tmp_path):
    lines = good_lines()
    huge = '{"type": "IssuesEvent", "repo": {"name": "a/b"}, "pad": "' + "A" * (40 << 20) + '"}'
    path = tmp_path / "2018-11-14-13.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines[:5] + [huge] + lines[5:]) + "\n")
    del huge
    connector = GHArchiveConnector(path, batch_size=1000)
    connector.max_record_bytes = 1 << 20
    got, peak = drain_measuring_memory(connector)
    assert peak < 8 << 20, f"peak {peak / 2**20:.0f} MiB while reading a 40 MiB line"
    (skip,) = got.skips
    assert skip.location == f"{path}:6" and "bytes" in skip.reason
    assert {r.native_id for r in got.records} == {r.native_id for r in drain(GHArchiveConnector(HOUR_A)).records}
    assert all(s["done"] == 31 and s["complete"] for s in got.checkpoint["files"].values())


def test_a_mail_message_over_the_size_cap_is_skipped_without_being_held(tmp_path):
    """A message of many short lines passes the per-line cap: the message as a whole is capped too."""
    good = MBOX.read_bytes()
    huge = b"From evil@example.org Mon Jan  1 00:00:00 2024\nSubject: big\nMessage-ID: <big@x>\n\n" + \
        b"short line of text\n" * (2 << 20)  # 38 MiB in lines of 19 bytes
    path = tmp_path / "list.mbox"
    path.write_bytes(good + b"\n" + huge + b"\n" + good.replace(b"Message-ID: <", b"Message-ID: <again-"))
    del huge
    connector = MailConnector(path, project="oss-security")
    connector.max_record_bytes = 1 << 20
    got, peak = drain_measuring_memory(connector)
    assert peak < 8 << 20, f"peak {peak / 2**20:.0f} MiB while reading a 38 MiB message"
    (skip,) = got.skips
    assert skip.location == f"{path}: message 3" and "bytes" in skip.reason
    assert len(got.records) == 4 and "big" not in {r.title for r in got.records}


def test_the_size_cap_defaults_to_ten_megabytes_and_is_a_cli_option():
    from typer.testing import CliRunner

    from transferlab.cli import app

    assert GHArchiveConnector(HOUR_A).max_record_bytes == 10 * 1000 * 1000
    assert "--max-record-bytes" in CliRunner().invoke(app, ["vuln", "ingest", "--help"], terminal_width=200).output


# ---------------------------------------------------------------------- checkpoints: paths and change
def test_the_same_file_by_another_path_is_not_read_twice(db_url, tmp_path, monkeypatch):
    folder = tmp_path / "hours"
    folder.mkdir()
    (folder / "h.jsonl").write_bytes(HOUR_A.read_bytes())
    store = Store.open(db_url)
    monkeypatch.chdir(tmp_path)
    first = ingest(GHArchiveConnector("hours/h.jsonl"), store, progress=False)
    assert first.read > 0
    monkeypatch.chdir(folder)
    again = ingest(GHArchiveConnector("../hours/./h.jsonl"), store, progress=False)
    assert again.resumed and again.read == 0
    assert GHArchiveConnector(str(folder / "h.jsonl")).key == GHArchiveConnector("./h.jsonl").key


def test_a_grown_mail_archive_and_a_replaced_hour_are_read_again(db_url, tmp_path):
    store = Store.open(db_url)
    archive = tmp_path / "list.mbox"
    archive.write_bytes(MBOX.read_bytes())
    assert ingest(MailConnector(archive), store, progress=False).new == 2
    with archive.open("ab") as fh:
        fh.write(b"\nFrom eve@example.org Thu Jan 24 09:30:45 2019\nFrom: eve@example.org\nSubject: later\n"
                 b"Message-ID: <later@example.org>\n\nnew text\n")
    grown = ingest(MailConnector(archive), store, progress=False)
    assert grown.new == 1 and store.count() == 3 and grown.read == 1  # only what was appended

    hour = tmp_path / "2018-11-14-12.json"
    hour.write_bytes(HOUR_A.read_bytes())
    first = ingest(GHArchiveConnector(hour), store, progress=False)
    hour.write_bytes(HOUR_B.read_bytes())  # GH Archive republished the hour
    replaced = ingest(GHArchiveConnector(hour), store, progress=False)
    assert first.new > 0 and replaced.new > 0 and replaced.read == len(drain(GHArchiveConnector(HOUR_B)).records)
    assert ingest(GHArchiveConnector(hour), store, progress=False).read == 0


def test_checkpoints_from_before_are_honoured(db_url, tmp_path, monkeypatch):
    """A checkpoint written by the previous release (the path as typed, no fingerprint) still resumes."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "h.jsonl").write_bytes(HOUR_A.read_bytes())
    store = Store.open(db_url)
    store.write_batch("gharchive:h.jsonl", Batch(checkpoint={"files": {"h.jsonl": {"done": 30, "complete": True}}}))
    report = ingest(GHArchiveConnector("h.jsonl"), store, progress=False)
    assert report.resumed and report.read == 0


def test_a_long_list_of_files_still_gets_a_checkpoint(db_url, tmp_path):
    for i in range(60):
        (tmp_path / f"2018-11-14-{i:02d}-{'x' * 40}.json").write_bytes(HOUR_A.read_bytes() if i == 0 else b"")
    paths = sorted(tmp_path.glob("*.json"))
    store = Store.open(db_url)
    assert ingest(GHArchiveConnector(paths), store, progress=False).error is None
    assert ingest(GHArchiveConnector(paths), store, progress=False).read == 0


def test_a_truncation_skip_is_resolved_once_the_file_is_complete(db_url, tmp_path):
    full = gzip.compress(HOUR_A.read_bytes())
    hour = tmp_path / "2018-11-14-12.json.gz"
    hour.write_bytes(full[: len(full) * 2 // 3])
    store = Store.open(db_url)
    ingest(GHArchiveConnector(hour, batch_size=5), store, progress=False)
    (skip,) = store.skipped()
    assert "rerun once it is complete" in skip["reason"]
    hour.write_bytes(full)
    ingest(GHArchiveConnector(hour, batch_size=5), store, progress=False)
    assert store.skipped() == []
    (old,) = store.skipped(include_resolved=True)
    assert old["resolved_at"] is not None and old["location"] == skip["location"]


# ---------------------------------------------------------------------- review of the issue-13 hardening


def _deep(levels: int, leaf):
    """``levels`` nested containers (dicts and lists in turn), ``leaf`` at the bottom."""
    value = leaf
    for i in range(levels):
        value = {"k\x00\ud800": value} if i % 2 else [value]
    return value


def test_a_deeply_nested_payload_is_made_storable_without_recursion(db_url):
    """json.loads and json.dumps take ~990 levels; an unused field nested 900 deep must not cost the record."""
    raw = {"payload": {"unused": _deep(900, ["x\ud800y\x00", float("nan"), 1.5, None, True])}}
    json.dumps(raw)  # what the source could have sent
    record = Record(source="github", connector="t", project="a/b", kind="issue", native_id="a/b#1",
                    title="deep", updated_at=T0, raw=raw)
    value, depth = record.raw["payload"]["unused"], 0
    while not (isinstance(value, list) and len(value) == 5):
        value = value["k\ufffd"] if isinstance(value, dict) else value[0]
        depth += 1
    assert depth == 900 and value == ["x\ufffdy", "nan", 1.5, None, True]
    store = Store.open(db_url)
    assert store.write_batch("k", Batch(records=[record])).new == 1
    (row,) = store.iter_records()
    assert json.dumps(row["raw"]) == json.dumps(record.raw)


def test_storable_keeps_its_behaviour_and_its_speed():
    from transferlab.vuln.records import storable

    payload = {"a\x00": ["\ud800", {"b": float("inf")}, (1, 2.0, "ok")], "n": None, "t": True, 3: -math.inf}
    assert storable(payload) == {"a": ["\ufffd", {"b": "inf"}, [1, 2.0, "ok"]], "n": None, "t": True,
                                 "3": "-inf"}
    assert storable("plain") == "plain" and storable(7) == 7 and storable(None) is None
    event = json.loads(good_lines()[0])
    import timeit

    per_event = min(timeit.repeat(lambda: storable(event), number=200, repeat=3)) / 200
    assert per_event < 2e-4, per_event  # a GH Archive event, tens of microseconds: the ingest hot path
    assert storable(event) == event


class _Unwritable:
    """A FileLock whose lock file cannot be created (a read-only folder, for a user that is not root)."""

    def __init__(self, path, *args, **kwargs):
        self.path = path

    def __enter__(self):
        raise PermissionError(13, "Permission denied", self.path)

    acquire = __enter__

    def __exit__(self, *exc):
        return False


def test_a_store_at_head_opens_where_no_lock_file_can_be_written(tmp_path, monkeypatch):
    import filelock

    url = f"sqlite:///{tmp_path / 'store.db'}"
    Store.open(url).write_batch("k", Batch(checkpoint={"page": 1}))
    tmp_path.chmod(0o555)  # as a user would see it; root ignores it, hence the lock that cannot be taken
    try:
        monkeypatch.setattr(filelock, "FileLock", _Unwritable)
        assert Store.open(url).checkpoint("k") == {"page": 1}
    finally:
        tmp_path.chmod(0o755)


@pytest.mark.parametrize("failure", ["permission", "timeout"])
def test_a_lock_file_that_cannot_be_taken_is_a_clear_store_error(tmp_path, monkeypatch, failure):
    import filelock

    from transferlab.vuln.store import StoreError

    class TimesOut(_Unwritable):
        def __enter__(self):
            raise filelock.Timeout(self.path)

        acquire = __enter__

    monkeypatch.setattr(filelock, "FileLock", _Unwritable if failure == "permission" else TimesOut)
    with pytest.raises(StoreError) as caught:
        Store.open(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert str(tmp_path / "fresh.db.lock") in str(caught.value)
    assert caught.value.hint


def test_resolving_a_skip_touches_only_its_own_source(db_url):
    store = Store.open(db_url)
    for key in ("gharchive:/data/a.json.gz", "mail:/data/list.mbox"):
        store.write_batch(key, Batch(skips=[Skip("hour.json.gz: line 7", "the file ends early")]))
    store.write_batch("gharchive:/data/a.json.gz", Batch(resolved=["hour.json.gz: line 7"]))
    assert [s["source_key"] for s in store.skipped()] == ["mail:/data/list.mbox"]


def test_a_skip_under_a_legacy_key_is_resolved_only_for_that_connector(db_url):
    """A skip written by a release that keyed files by the path as typed is resolved with the new key's read,
    and a skip of another source at the same location is left open."""
    store = Store.open(db_url)
    store.write_batch("gharchive:h.json.gz", Batch(skips=[Skip("h.json.gz: line 4", "the file ends early")]))
    store.write_batch("gharchive:other.json.gz", Batch(skips=[Skip("h.json.gz: line 4", "the file ends early")]))
    store.write_batch("gharchive:/data/h.json.gz", Batch(resolved=["h.json.gz: line 4"]),
                      legacy_keys=["gharchive:h.json.gz"])
    assert [s["source_key"] for s in store.skipped()] == ["gharchive:other.json.gz"]
