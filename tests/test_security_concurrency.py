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


ROUNDS = 150  # batches per writer: enough that they overlap and, before the fix, deadlocked every time


def _write_in_order(url: str, barrier, reverse: bool, rounds: int) -> str | None:
    from datetime import datetime, timedelta, timezone

    from transferlab.vuln.records import Record
    from transferlab.vuln.sources.base import Batch
    from transferlab.vuln.store import Store

    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    try:
        store = Store.open(url)
        barrier.wait(timeout=60)
        for n in range(rounds):
            batch = [Record(source="github", connector="t", project="a/b", kind="issue", native_id=f"a/b#{i}",
                            title=f"round {n}", updated_at=t0 + timedelta(minutes=n)) for i in range(60)]
            store.write_batch(f"writer-{reverse}", Batch(records=batch[::-1] if reverse else batch,
                                                         checkpoint={"round": n}))
        return None
    except Exception as err:  # noqa: BLE001 - the parent asserts on it
        return f"{type(err).__name__}: {err}"


def test_two_ingests_of_the_same_records_in_opposite_orders_do_not_deadlock(db_url):
    """Upserts lock rows in the order they are written: two batches sharing records in opposite orders deadlocked
    on PostgreSQL (SQLSTATE 40P01) and one ingest crashed."""
    from transferlab.vuln.store import Store

    Store.open(db_url)
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(2)
        with ctx.Pool(2) as pool:
            errors = pool.starmap(_write_in_order, [(db_url, barrier, False, ROUNDS), (db_url, barrier, True, ROUNDS)])
    assert errors == [None, None]
    ids = _identities(db_url)
    assert len(ids) == 60 and len(set(ids)) == 60
    assert {r["title"] for r in Store.open(db_url).iter_records()} == {f"round {ROUNDS - 1}"}


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
def test_a_batch_that_lost_a_deadlock_is_written_again(db_url, monkeypatch, sqlstate):
    """PostgreSQL aborts one of two deadlocked (or serialization-conflicting) transactions: the batch is retried
    whole, and any other database error still ends the ingest."""
    import sqlalchemy as sa

    from transferlab.vuln import store as store_module
    from transferlab.vuln.records import Record
    from transferlab.vuln.sources.base import Batch

    class Orig(Exception):
        pass

    def failure(state):
        orig = Orig("deadlock detected")
        orig.sqlstate = state
        return sa.exc.OperationalError("INSERT ...", {}, orig)

    store = store_module.Store.open(db_url)
    real, calls = store._write_batch_once, []

    def losing_twice(*args):
        calls.append(1)
        if len(calls) <= 2:
            raise failure(sqlstate)
        return real(*args)

    monkeypatch.setattr(store, "_write_batch_once", losing_twice)
    monkeypatch.setattr(store_module.time, "sleep", lambda s: None)
    record = Record(source="github", connector="t", project="a/b", kind="issue", native_id="a/b#1", title="t")
    assert store.write_batch("k", Batch(records=[record], checkpoint={"n": 1})).new == 1
    assert len(calls) == 3 and store.checkpoint("k") == {"n": 1}

    def connection_lost(*args):
        calls.append(1)
        raise failure("08006")

    calls.clear()
    monkeypatch.setattr(store, "_write_batch_once", connection_lost)
    with pytest.raises(sa.exc.OperationalError):
        store.write_batch("k", Batch(records=[record]))
    assert len(calls) == 1
