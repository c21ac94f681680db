"""The store on SQLite and on a real PostgreSQL server: migrations, idempotent upserts, atomic batches, resuming.

PostgreSQL comes from TRANSFERLAB_TEST_PG_URL (``bash scripts/postgres.sh start`` prints one); without it those
cases skip, unless TRANSFERLAB_REQUIRE_PG=1 (as in CI), where a missing server fails the run.
"""

from datetime import datetime, timedelta, timezone

import pytest

from conftest import SHARED_DATA
from transferlab.vuln.ingest import ingest
from transferlab.vuln.records import Record
from transferlab.vuln.sources.base import Batch, Connector, Skip
from transferlab.vuln.sources.gharchive import GHArchiveConnector
from transferlab.vuln.store import Store, StoreError, metadata

EVENTS = SHARED_DATA / "fixtures" / "github_events"


def record(n: int, updated: datetime, title: str = "t", source: str = "github") -> Record:
    return Record(source=source, connector="test", project="a/b", kind="issue", native_id=f"a/b#{n}", title=title,
                  body="CVE-2020-1234 is mentioned", created_at=updated, updated_at=updated,
                  labels=["security"], raw={"n": n})


T0 = datetime(2024, 1, 1, 12, tzinfo=timezone.utc)


def test_migrations_create_the_schema_the_code_expects(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    store = Store.open(db_url)
    assert store.revision() == "0005"
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), metadata)
    assert diff == []
    assert Store.open(db_url).revision() == "0005"  # migrating an up-to-date store is a no-op


def test_a_sqlite_store_names_its_migration_lock_file(tmp_path):
    """The lock file beside a SQLite database is named by the store (callers that clean up scratch stores ask it)."""
    store = Store.open(f"sqlite:///{tmp_path / 'v.db'}")
    assert store.migration_lock_path == tmp_path / "v.db.lock" and store.migration_lock_path.exists()
    assert Store.open("sqlite://").migration_lock_path is None


def test_a_store_from_the_first_release_is_upgraded_without_losing_records(db_url):
    old = Store.open(db_url, migrate=False)
    old.migrate("0001")
    old.write_batch("k", Batch(records=[record(1, T0), record(2, T0)]))
    store = Store.open(db_url)  # opening migrates to the newest revision
    assert store.revision() == "0005" and store.count() == 2
    rid = next(store.iter_records())["id"]
    store.write_scores("v1", [{"record_id": rid, "stage1": 0.9, "stage2": 0.8, "flagged": True, "evidence": {}}])
    store.add_verdict(rid, "vulnerability", "alice", "checked")
    assert store.scored("v1", flagged_only=True)[0]["verdict"] == "vulnerability"
    # a newer version of a scored record drops its stale score, so the next scan scores it again
    store.write_batch("k", Batch(records=[record(1, T0 + timedelta(hours=1), title="changed")]))
    assert len(store.unscored_ids("v1")) == 2


def test_upsert_is_idempotent_and_keeps_the_newest_version(db_url):
    store = Store.open(db_url)
    first = store.write_batch("k", Batch(records=[record(1, T0), record(2, T0)], checkpoint={"page": 1}))
    assert (first.new, first.updated) == (2, 0)
    again = store.write_batch("k", Batch(records=[record(1, T0), record(2, T0)], checkpoint={"page": 1}))
    assert (again.new, again.updated, again.unchanged) == (0, 0, 2) and store.count() == 2
    newer = store.write_batch("k", Batch(records=[record(1, T0 + timedelta(hours=1), title="edited"),
                                                  record(2, T0 - timedelta(hours=1), title="stale")]))
    assert (newer.updated, newer.unchanged) == (1, 1)
    rows = {r["native_id"]: r for r in store.iter_records()}
    assert rows["a/b#1"]["title"] == "edited" and rows["a/b#2"]["title"] == "t"
    assert rows["a/b#1"]["updated_at"] == T0 + timedelta(hours=1)  # times come back as aware UTC
    assert rows["a/b#1"]["refs"] == {"cve": ["CVE-2020-1234"]} and rows["a/b#1"]["labels"] == ["security"]
    assert store.checkpoint("k") == {"page": 1}
    in_batch = store.write_batch("k", Batch(records=[record(3, T0), record(3, T0 + timedelta(1), title="later")]))
    assert in_batch.new == 1 and next(r for r in store.iter_records() if r["native_id"] == "a/b#3")["title"] == "later"
    assert store.count(source="github") == 3 and store.count(source="jira") == 0


def test_a_failed_batch_writes_nothing(db_url, monkeypatch):
    store = Store.open(db_url)
    store.write_batch("k", Batch(records=[record(1, T0)], checkpoint={"line": 1}))

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "_set_checkpoint", broken)
    with pytest.raises(RuntimeError):
        store.write_batch("k", Batch(records=[record(2, T0)], skips=[Skip("f:2", "bad")], checkpoint={"line": 2}))
    assert store.count() == 1 and store.skipped() == [] and store.checkpoint("k") == {"line": 1}


def test_skips_are_kept_once_with_how_often_they_were_met(db_url):
    store = Store.open(db_url)
    for _ in range(2):
        store.write_batch("k", Batch(skips=[Skip("hour.json.gz:7", "not a JSON object")]))
    (skip,) = store.skipped("k")
    assert (skip["location"], skip["times"]) == ("hour.json.gz:7", 2)


class Killed(Exception):
    pass


class DiesAfter(Connector):
    """Wraps a connector and dies (like kill -9 between two commits) after n batches."""

    name = "dies"

    def __init__(self, inner, n):
        self.inner, self.n = inner, n

    @property
    def key(self):
        return self.inner.key

    def batches(self, checkpoint):
        for i, batch in enumerate(self.inner.batches(checkpoint)):
            if i == self.n:
                raise Killed()
            yield batch


def test_ingest_resumes_after_a_kill_without_duplicates(db_url):
    if not EVENTS.exists():
        pytest.skip("../shared/data/fixtures is not beside the repository")
    store = Store.open(db_url)
    with pytest.raises(Killed):
        ingest(DiesAfter(GHArchiveConnector(EVENTS, batch_size=7), 3), store, progress=False)
    partial = store.count()
    assert 0 < partial < 55
    report = ingest(GHArchiveConnector(EVENTS, batch_size=7), store, progress=False)
    assert report.resumed and report.error is None
    fresh = Store.open(db_url.replace("store.db", "fresh.db")) if db_url.startswith("sqlite") else None
    assert store.count() == 55
    if fresh is not None:
        ingest(GHArchiveConnector(EVENTS), fresh, progress=False)
        assert sorted(r["native_id"] for r in fresh.iter_records()) == sorted(r["native_id"] for r in
                                                                               store.iter_records())
    rerun = ingest(GHArchiveConnector(EVENTS), store, progress=False)
    assert rerun.read == 0  # everything is behind the checkpoint
    restart = ingest(GHArchiveConnector(EVENTS), store, progress=False, restart=True)
    assert restart.read == 58 and restart.new == 0 and store.count() == 55


def test_bad_urls_and_unreachable_servers_are_clear_errors(tmp_path):
    with pytest.raises(StoreError, match="not a database URL"):
        Store.open("no-such-scheme")
    with pytest.raises(StoreError, match="cannot open the database"):
        Store.open("postgresql+psycopg://nobody@127.0.0.1:1/none")
