"""Issue 13: two ingests at once, into a fresh database or of the same file, both succeed and store each record
once (separate processes, started together, on SQLite and PostgreSQL)."""

import multiprocessing as mp

import pytest

from conftest import SHARED_DATA

EVENTS = SHARED_DATA / "fixtures" / "github_events"


@pytest.fixture(scope="module", autouse=True)
def _fixtures():
    if not EVENTS.exists():
        pytest.skip("../shared/data/fixtures is not beside the repository")


def _ingest_at_once(url: str, barrier, batch_size: int) -> str | None:
    from transferlab.vuln.ingest import ingest
    from transferlab.vuln.sources.gharchive import GHArchiveConnector
    from transferlab.vuln.store import Store

    try:
        barrier.wait(timeout=60)
        report = ingest(GHArchiveConnector(EVENTS, batch_size=batch_size), Store.open(url), progress=False)
        return report.error
    except Exception as err:  # noqa: BLE001 - the parent asserts on it
        return f"{type(err).__name__}: {err}"


def _run_two(url: str, batch_size: int) -> list:
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(2)
        with ctx.Pool(2) as pool:
            return pool.starmap(_ingest_at_once, [(url, barrier, batch_size)] * 2)


def _identities(url):
    from transferlab.vuln.store import Store

    return [r["native_id"] for r in Store.open(url).iter_records()]


def test_two_ingests_into_a_fresh_database_both_succeed(db_url):
    assert _run_two(db_url, batch_size=500) == [None, None]
    ids = _identities(db_url)
    assert len(ids) == 55 and len(set(ids)) == 55


def test_two_ingests_of_the_same_file_at_once_store_each_record_once(db_url):
    from transferlab.vuln.store import Store

    Store.open(db_url)  # migrated: this case is about the record writes
    assert _run_two(db_url, batch_size=1) == [None, None]  # a transaction per record: they interleave
    ids = _identities(db_url)
    assert len(ids) == 55 and len(set(ids)) == 55
