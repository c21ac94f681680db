"""Where ingested records, checkpoints and skips live: SQLite by default, PostgreSQL by URL (SQLAlchemy + Alembic).

The schema is owned by the Alembic migrations in ``migrations/``; :meth:`Store.open` brings any database to the
newest revision before use, so an older store keeps working after an upgrade; migrations are serialised (a
PostgreSQL advisory lock, a lock file beside a SQLite database), so two processes opening a fresh store both
succeed, and a store already at the newest revision is opened without the lock (a read-only folder is fine).
A batch from a connector is written in one transaction (records upserted by ``(source, native_id)`` with
``INSERT ... ON CONFLICT``, skips, checkpoint), which is what makes ingestion idempotent, resumable and safe to
run twice at once (rows are written in identity order, and a batch that loses a deadlock is written again).  A
record the database refuses is a skip of its own: the rest of its batch and the checkpoint are still committed.
Every statement is built by SQLAlchemy with bound parameters.
"""

from __future__ import annotations

import random
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from transferlab.errors import TransferLabError

from .records import Record, bounded, storable, storable_text
from .sources.base import Batch, Skip

DEFAULT_URL = "sqlite:///transferlab-vuln.db"
MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x746C76756C6E  # PostgreSQL advisory lock key held while migrating ("tlvuln")
KEY_WIDTH = 2048  # checkpoints.key and skips.source_key
REASON_WIDTH = 2000  # a skip's reason is a sentence, not a copy of the input
RETRIES = 5  # tries of a batch that lost a deadlock or a serialization conflict to a concurrent writer
_TRANSIENT = ("40P01", "40001")  # deadlock detected, serialization failure: the same batch succeeds when rerun


class StoreError(TransferLabError):
    """The database URL is wrong, the server cannot be reached, or the schema is newer than this code."""


class UTCDateTime(sa.types.TypeDecorator):
    """Times are stored as naive UTC (the same on SQLite and PostgreSQL) and read back as aware UTC."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=timezone.utc) if value is not None else None


JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
metadata = sa.MetaData()

records = sa.Table(
    "records", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("native_id", sa.String(512), nullable=False),
    sa.Column("connector", sa.String(32), nullable=False),
    sa.Column("project", sa.String(512), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("url", sa.Text),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("author", sa.Text),
    sa.Column("created_at", UTCDateTime),
    sa.Column("updated_at", UTCDateTime),
    sa.Column("labels", JSONType, nullable=False),
    sa.Column("parent_id", sa.String(512)),
    sa.Column("refs", JSONType, nullable=False),
    sa.Column("raw", JSONType),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("last_seen", UTCDateTime, nullable=False),
    sa.UniqueConstraint("source", "native_id", name="uq_records_identity"),
    sa.Index("ix_records_project", "project"),
    sa.Index("ix_records_created_at", "created_at"),
)

checkpoints = sa.Table(
    "checkpoints", metadata,
    sa.Column("key", sa.String(2048), primary_key=True),
    sa.Column("state", JSONType, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

skips = sa.Table(
    "skips", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("source_key", sa.String(2048), nullable=False),
    sa.Column("location", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("times", sa.Integer, nullable=False),
    sa.Column("resolved_at", UTCDateTime),
    sa.Index("ix_skips_source_key", "source_key"),
)

scores = sa.Table(
    "scores", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("record_id", sa.Integer, sa.ForeignKey("records.id", ondelete="CASCADE"), nullable=False),
    sa.Column("cascade_version", sa.String(64), nullable=False),
    sa.Column("stage1", sa.Float, nullable=False),
    sa.Column("stage2", sa.Float),
    sa.Column("flagged", sa.Boolean, nullable=False),
    sa.Column("evidence", JSONType, nullable=False),
    sa.Column("scored_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("record_id", "cascade_version", name="uq_scores_record_version"),
    sa.Index("ix_scores_flagged", "cascade_version", "flagged"),
)

VERDICTS = ("vulnerability", "security-not-vuln", "not-security")
verdicts = sa.Table(
    "verdicts", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("record_id", sa.Integer, sa.ForeignKey("records.id", ondelete="CASCADE"), nullable=False),
    sa.Column("verdict", sa.String(32), nullable=False),
    sa.Column("comment", sa.Text),
    sa.Column("reviewer", sa.String(256), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("cascade_version", sa.String(64)),
    sa.Index("ix_verdicts_record", "record_id"),
)

ROLES = ("reviewer", "admin")
users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(256)),  # a salted scrypt hash (serve/accounts.py), or none: tokens only
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("disabled_at", UTCDateTime),
    sa.UniqueConstraint("name", name="uq_users_name"),
)
api_tokens = sa.Table(
    "api_tokens", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("public_id", sa.String(32), nullable=False),  # the part of a token that finds its row
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("secret_hash", sa.String(256), nullable=False),  # never the secret itself
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_used_at", UTCDateTime),
    sa.Column("revoked_at", UTCDateTime),
    sa.UniqueConstraint("public_id", name="uq_api_tokens_public_id"),
)

notifications = sa.Table(
    "notifications", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("record_id", sa.Integer, sa.ForeignKey("records.id", ondelete="CASCADE"), nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),  # webhook | email
    sa.Column("status", sa.String(16), nullable=False),  # sent | baseline (there before the watch first ran)
    sa.Column("at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("record_id", "channel", name="uq_notifications_record_channel"),
)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _row(record: Record, now: datetime) -> dict:
    return {
        "source": record.source, "native_id": record.native_id, "connector": record.connector,
        "project": record.project, "kind": record.kind, "url": record.url, "title": record.title,
        "body": record.body, "author": record.author, "created_at": record.created_at,
        "updated_at": record.updated_at, "labels": record.labels, "parent_id": record.parent_id,
        "refs": record.references, "raw": record.raw, "first_seen": now, "last_seen": now,
    }


def _newer(incoming: datetime | None, stored: datetime | None) -> bool:
    return stored is None or (incoming is not None and incoming >= stored)


def _key(key: str) -> str:
    """A checkpoint key that fits its column (many files on one command line make a long one)."""
    return bounded(storable_text(key), KEY_WIDTH) if len(key) > KEY_WIDTH else storable_text(key)


# The database itself failed (locked, gone, out of space), not one record: never turned into a record's skip.
_NOT_THE_RECORD = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.InternalError)


def _sqlstate(err: Exception) -> str:
    return str(getattr(getattr(err, "orig", None), "sqlstate", None) or "")


def _record_fault(err: Exception) -> bool:
    sqlstate = _sqlstate(err)
    if sqlstate[:2] in ("22", "23", "54"):  # PostgreSQL: bad data, a constraint, a size limit: this record's values
        return True
    return isinstance(err, (sa.exc.StatementError, UnicodeError, TypeError, ValueError)) and \
        not isinstance(err, _NOT_THE_RECORD)


def _first_line(err: Exception) -> str:
    text = str(getattr(err, "orig", None) or err) or type(err).__name__
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


@dataclass
class Written:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skips: int = 0
    rejected: list[Skip] = field(default_factory=list)
    """Records the database refused, each now a skip at its place; the rest of the batch was stored."""


def _engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as err:
        raise StoreError(f"not a database URL: {url!r} ({err})",
                         hint="sqlite:///path/to/file.db or postgresql+psycopg://user@host/dbname") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("psycopg2", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver we ship
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, future=True)
    engine = sa.create_engine(parsed, future=True, connect_args={"timeout": 60})

    # pysqlite's own transaction handling starts transactions late and breaks SAVEPOINT; SQLAlchemy documents
    # this recipe: the driver starts none and we say BEGIN.  Writes say BEGIN IMMEDIATE: they take the write lock
    # first, so a second writer waits its turn instead of failing when it upgrades a read lock.
    @sa.event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection, _record):
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("writes") else "BEGIN")

    return engine


class Store:
    """One database.  ``Store.open(url)`` connects and migrates; the methods are what the application needs."""

    def __init__(self, engine: Engine):
        self.engine = engine

    @classmethod
    def open(cls, url: str = DEFAULT_URL, migrate: bool = True) -> "Store":
        store = cls(_engine(url))
        if migrate:
            store.migrate()
        return store

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def _writing(self):
        """A transaction that will write (on SQLite it takes the write lock at once)."""
        with self.engine.connect() as conn:
            conn.execution_options(writes=True)
            with conn.begin():
                yield conn

    @property
    def migration_lock_path(self) -> Path | None:
        """The file that serialises migrations of a SQLite database file (left in place after release, as filelock
        does, so a waiting process never locks a deleted file); None for PostgreSQL and in-memory databases."""
        database = self.engine.url.database
        if self.engine.dialect.name != "sqlite" or database in (None, "", ":memory:"):
            return None
        return Path(str(Path(database).expanduser()) + ".lock")

    @contextmanager
    def _migration_lock(self):
        """Only one process migrates a database at a time; the others then find it up to date."""
        path = self.migration_lock_path
        if path is None:
            yield  # PostgreSQL: an advisory lock inside the migration's transaction
            return
        import filelock

        lock = filelock.FileLock(str(path), timeout=600)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise StoreError("another process has held the migration lock for 10 minutes", where=str(path),
                             hint="wait for the other `transferlab vuln` command to finish, or delete the lock file "
                                  "if no other is running") from None
        except OSError as err:
            raise StoreError(f"cannot create the migration lock file ({err.strerror or err})", where=str(path),
                             hint="this database is older than this version of TransferLab and must be upgraded "
                                  "once: run the command where its folder is writable (as the owner of the "
                                  "database)") from None
        try:
            yield
        finally:
            lock.release()

    def _at_head(self, cfg) -> bool:
        """Whether the database is already at the newest revision: read without any lock, so that an up-to-date
        store opens where its folder is read-only."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        with self.engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
        return current == set(ScriptDirectory.from_config(cfg).get_heads())

    def migrate(self, revision: str = "head") -> None:
        from alembic import command
        from alembic.config import Config
        from alembic.util.exc import CommandError

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        try:
            if revision == "head" and self._at_head(cfg):
                return
            with self._migration_lock(), self._writing() as conn:
                if conn.dialect.name == "postgresql":  # released when the migration commits
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
        except OperationalError as err:
            raise StoreError(f"cannot open the database: {err.orig}", where=self.url) from None
        except CommandError as err:
            raise StoreError(f"the database schema is not one this version knows ({err})", where=self.url,
                             hint="upgrade TransferLab, or point --db at another database") from None

    def revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    # ---- ingestion -------------------------------------------------------------------------------------------
    def checkpoint(self, key: str) -> dict | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(checkpoints.c.state).where(checkpoints.c.key == _key(key))
                                ).scalar_one_or_none()

    def write_batch(self, key: str, batch: Batch, legacy_keys: Sequence[str] = ()) -> Written:
        """Records, skips and the checkpoint of one batch in one transaction.  When the database refuses a record,
        the batch is written again record by record, each in a savepoint: a refused one becomes a skip at its
        place, and the others, the skips and the checkpoint are committed.  ``legacy_keys`` are the keys an
        earlier release gave this source (:attr:`Connector.legacy_keys`): skips filed under them are resolved
        too.

        Rows are written in identity order, so two writers sharing records take their row locks in the same order;
        a deadlock or serialization failure that still happens (PostgreSQL picks one transaction to abort) rolls
        the whole batch back, and it is written again after a short, growing, jittered pause."""
        key, now = _key(key), _now()
        legacy = [_key(k) for k in legacy_keys if _key(k) != key]
        latest: dict[tuple[str, str], Record] = {}
        for record in batch.records:  # one row per identity: the newest version of it in this batch
            ident = (record.source, record.native_id)
            if ident not in latest or _newer(record.updated_at, latest[ident].updated_at):
                latest[ident] = record
        rows = [latest[ident] for ident in sorted(latest)]
        # A loop of a few lines, not a retry library: what is retried is decided by SQLSTATE, and the pause is
        # all there is to it.
        for attempt in range(1, RETRIES + 1):
            try:
                written = self._write_batch_once(key, legacy, batch, rows, now)
                break
            except sa.exc.DBAPIError as err:
                if _sqlstate(err) not in _TRANSIENT or attempt == RETRIES:
                    raise
                time.sleep(random.uniform(0.5, 1.5) * 0.05 * 2 ** attempt)
        written.unchanged += len(batch.records) - len(latest)
        return written

    def _write_batch_once(self, key: str, legacy: list[str], batch: Batch, rows: list[Record],
                          now: datetime) -> Written:
        try:
            with self._writing() as conn:
                written = Written()
                self._upsert(conn, rows, now, written)
                self._finish(conn, key, legacy, batch, now, written)
        except Exception as err:  # noqa: BLE001 - re-raised unless one record is to blame
            if not _record_fault(err):
                raise
            with self._writing() as conn:
                written = Written()
                for record in rows:
                    try:
                        with conn.begin_nested():
                            self._upsert(conn, [record], now, written)
                    except Exception as err:  # noqa: BLE001 - as above
                        if not _record_fault(err):
                            raise
                        written.rejected.append(Skip(record.origin or f"{record.source} {record.native_id}",
                                                     f"the database refused this record: {_first_line(err)}"))
                self._finish(conn, key, legacy, batch, now, written)
        return written

    def _finish(self, conn, key: str, legacy: list[str], batch: Batch, now: datetime, written: Written) -> None:
        if batch.resolved:  # a later read made these good (a truncated file now complete); only this source's
            conn.execute(skips.update().where(skips.c.source_key.in_([key, *legacy]),
                                              skips.c.location.in_([storable_text(x) for x in batch.resolved]),
                                              skips.c.resolved_at.is_(None)).values(resolved_at=now))
        for skip in batch.skips + written.rejected:
            written.skips += self._skip(conn, key, skip.location, skip.reason, now)
        if batch.checkpoint is not None:
            self._set_checkpoint(conn, key, storable(batch.checkpoint), now)

    def _upsert(self, conn, batch: list[Record], now: datetime, written: Written) -> None:
        """``INSERT ... ON CONFLICT (source, native_id) DO UPDATE ... WHERE`` the incoming version is strictly newer,
        so a concurrent writer of the same records neither fails nor overwrites a newer version with an older."""
        insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(records)
        incoming, stored = insert.excluded.updated_at, records.c.updated_at
        strictly_newer = sa.and_(incoming.is_not(None), sa.or_(stored.is_(None), incoming > stored))
        upsert = insert.on_conflict_do_update(
            index_elements=["source", "native_id"], where=strictly_newer,
            set_={c.name: insert.excluded[c.name] for c in records.c if c.name not in ("id", "first_seen")},
        ).returning(records.c.id, records.c.source, records.c.native_id, records.c.first_seen)
        for start in range(0, len(batch), 500):
            chunk = batch[start:start + 500]
            # rows come back for what was inserted (first seen now) or replaced; an unchanged one comes back not
            changed = conn.execute(upsert, [_row(r, now) for r in chunk]).all()
            new = [row for row in changed if row.first_seen == now]
            replaced = [row.id for row in changed if row.first_seen != now]
            if replaced:  # the text changed: its scores are stale and it is scored again on the next scan
                conn.execute(scores.delete().where(scores.c.record_id.in_(replaced)))
            done = {(row.source, row.native_id) for row in changed}
            same = [r for r in chunk if (r.source, r.native_id) not in done]
            for source in {r.source for r in same}:  # read again unchanged: only when it was last seen moves
                conn.execute(records.update().where(
                    records.c.source == source, records.c.native_id.in_([r.native_id for r in same
                                                                         if r.source == source]))
                    .values(last_seen=now))
            written.new += len(new)
            written.updated += len(replaced)
            written.unchanged += len(same)

    def _skip(self, conn, key: str, location: str, reason: str, now: datetime) -> int:
        """A skip seen again (the same input read twice) is counted once, with how often it was met; met again
        after it was resolved, it is open again."""
        location = storable_text(location)
        reason = storable_text(reason)
        reason = reason if len(reason) <= REASON_WIDTH else reason[:REASON_WIDTH - 1] + "\u2026"
        match = (skips.c.source_key == key, skips.c.location == location, skips.c.reason == reason)
        found = conn.execute(sa.select(skips.c.id).where(*match).limit(1)).scalar_one_or_none()
        if found is None:
            conn.execute(skips.insert().values(source_key=key, location=location, reason=reason, first_seen=now,
                                               times=1))
            return 1
        conn.execute(skips.update().where(skips.c.id == found).values(times=skips.c.times + 1, resolved_at=None))
        return 0

    def _set_checkpoint(self, conn, key: str, state: dict, now: datetime) -> None:
        insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(checkpoints)
        conn.execute(insert.values(key=key, state=state, updated_at=now).on_conflict_do_update(
            index_elements=["key"], set_={"state": insert.excluded.state, "updated_at": now}))

    def set_checkpoint(self, key: str, state: dict) -> None:
        with self._writing() as conn:
            self._set_checkpoint(conn, key, state, _now())

    def reset_checkpoint(self, key: str) -> None:
        with self._writing() as conn:
            conn.execute(checkpoints.delete().where(checkpoints.c.key == _key(key)))

    # ---- reading ---------------------------------------------------------------------------------------------
    def count(self, **where) -> int:
        query = sa.select(sa.func.count()).select_from(records)
        for column, value in where.items():
            query = query.where(records.c[column] == value)
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def skipped(self, key: str | None = None, include_resolved: bool = False) -> list[dict]:
        """What ingestion had to skip and has not read since; ``include_resolved`` adds what a later read fixed."""
        query = sa.select(skips).order_by(skips.c.id)
        if key is not None:
            query = query.where(skips.c.source_key == _key(key))
        if not include_resolved:
            query = query.where(skips.c.resolved_at.is_(None))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def iter_records(self, projects: list[str] | None = None, since: datetime | None = None,
                     kinds: list[str] | None = None, batch_size: int = 1000) -> Iterator[dict]:
        query = sa.select(records).order_by(records.c.id)
        if projects:
            query = query.where(sa.func.lower(records.c.project).in_([p.lower() for p in projects]))
        if since is not None:
            query = query.where(sa.func.coalesce(records.c.updated_at, records.c.created_at) >= since)
        if kinds:
            query = query.where(records.c.kind.in_(kinds))
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=batch_size).execute(query)
            for row in result:
                yield dict(row._mapping)

    def records_by_id(self, ids: list[int]) -> dict[int, dict]:
        out: dict[int, dict] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                query = sa.select(records).where(records.c.id.in_(ids[start:start + 500]))
                out.update({row.id: dict(row._mapping) for row in conn.execute(query)})
        return out

    # ---- scores ----------------------------------------------------------------------------------------------
    def unscored_ids(self, version: str, projects: list[str] | None = None,
                     since: datetime | None = None) -> list[int]:
        """Ids of the records (of these projects, changed since) that this cascade version has not scored yet."""
        done = sa.select(scores.c.record_id).where(scores.c.cascade_version == version)
        query = sa.select(records.c.id).where(records.c.id.not_in(done)).order_by(records.c.id)
        query = _where_projects_since(query, projects, since)
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def latest_version(self) -> str | None:
        """The cascade version that scored most recently (what triage lists by default)."""
        query = sa.select(scores.c.cascade_version).order_by(scores.c.scored_at.desc(), scores.c.id.desc()).limit(1)
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one_or_none()

    def write_scores(self, version: str, rows: list[dict]) -> int:
        """``rows``: record_id, stage1, stage2, flagged, evidence.  A record already scored by this version is
        replaced (one row per record and version)."""
        if not rows:
            return 0
        now = _now()
        with self._writing() as conn:  # several scorers at once (vuln backfill --engine ray): writers queue
            ids = [r["record_id"] for r in rows]
            conn.execute(scores.delete().where(scores.c.cascade_version == version, scores.c.record_id.in_(ids)))
            conn.execute(scores.insert(), [{**r, "cascade_version": version, "scored_at": now} for r in rows])
        return len(rows)

    def scored(self, version: str, projects: list[str] | None = None, since: datetime | None = None,
               flagged_only: bool = False) -> list[dict]:
        """Scored records joined with their score (and latest verdict, if any), newest first."""
        latest = (sa.select(verdicts.c.record_id, sa.func.max(verdicts.c.id).label("vid"))
                  .group_by(verdicts.c.record_id).subquery())
        query = (sa.select(records, scores.c.stage1, scores.c.stage2, scores.c.flagged, scores.c.evidence,
                           scores.c.scored_at, verdicts.c.verdict, verdicts.c.reviewer,
                           verdicts.c.comment.label("verdict_comment"), verdicts.c.created_at.label("verdict_at"))
                 .join(scores, scores.c.record_id == records.c.id)
                 .outerjoin(latest, latest.c.record_id == records.c.id)
                 .outerjoin(verdicts, verdicts.c.id == latest.c.vid)
                 .where(scores.c.cascade_version == version))
        if flagged_only:
            query = query.where(scores.c.flagged.is_(True))
        query = _where_projects_since(query, projects, since)
        query = query.order_by(sa.func.coalesce(records.c.updated_at, records.c.created_at).desc(), records.c.id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def project_counts(self, projects: list[str], since: datetime | None = None) -> dict[str, int]:
        """Records per project (lower-cased), without reading them."""
        query = sa.select(sa.func.lower(records.c.project), sa.func.count()).group_by(sa.func.lower(records.c.project))
        query = _where_projects_since(query, projects, since)
        with self.engine.connect() as conn:
            return {p: n for p, n in conn.execute(query)}

    def texts(self, projects: list[str], since: datetime | None = None) -> Iterator[dict]:
        """project, title and body of the records of these projects (no payloads): for mention checks."""
        query = _where_projects_since(sa.select(records.c.project, records.c.title, records.c.body), projects, since)
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=1000).execute(query):
                yield dict(row._mapping)

    # ---- verdicts --------------------------------------------------------------------------------------------
    def add_verdict(self, record_id: int, verdict: str, reviewer: str, comment: str | None = None,
                    cascade_version: str | None = None) -> int:
        if verdict not in VERDICTS:
            raise StoreError(f"unknown verdict {verdict!r}", hint=f"one of {', '.join(VERDICTS)}")
        if not reviewer or not reviewer.strip():
            raise StoreError("a verdict needs a reviewer", hint="--reviewer NAME, or $TRANSFERLAB_REVIEWER")
        # Checked here, not left to the database: SQLite would store what PostgreSQL refuses with a traceback.
        for column, value, forbidden in (("reviewer", reviewer.strip(), r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]"),
                                         ("cascade_version", cascade_version, r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]"),
                                         ("comment", comment, r"[\x00\ud800-\udfff]")):
            limit = getattr(verdicts.c[column].type, "length", None)
            if value is not None and limit and len(value) > limit:
                raise StoreError(f"the {column} is {len(value)} characters long; the store keeps at most {limit} "
                                 "characters", hint=f"shorten the {column}")
            if value is not None and re.search(forbidden, value):
                raise StoreError(f"the {column} contains a control character or a lone surrogate",
                                 hint=f"remove it from the {column}")
        with self.engine.begin() as conn:
            if conn.execute(sa.select(records.c.id).where(records.c.id == record_id)).scalar_one_or_none() is None:
                raise StoreError(f"no record with id {record_id}", where=self.url,
                                 hint="ids are the first column of `transferlab vuln triage`")
            result = conn.execute(verdicts.insert().values(
                record_id=record_id, verdict=verdict, reviewer=reviewer.strip(), comment=comment,
                created_at=_now(), cascade_version=cascade_version))
            return int(result.inserted_primary_key[0])

    # ---- notifications (the watch loop) ---------------------------------------------------------------------
    def notified(self, channel: str) -> set[int]:
        """Record ids already sent (or taken as the baseline) on this channel."""
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(notifications.c.record_id)
                                    .where(notifications.c.channel == channel)).scalars())

    def mark_notified(self, channel: str, record_ids: list[int], status: str = "sent") -> None:
        """Remember ``record_ids`` as told on ``channel``; ids already remembered are left as they are."""
        if not record_ids:
            return
        with self._writing() as conn:
            known = set(conn.execute(sa.select(notifications.c.record_id).where(
                notifications.c.channel == channel, notifications.c.record_id.in_(record_ids))).scalars())
            rows = [{"record_id": r, "channel": channel, "status": status, "at": _now()}
                    for r in dict.fromkeys(record_ids) if r not in known]
            if rows:
                conn.execute(notifications.insert(), rows)

    def verdicts(self, latest_only: bool = True) -> list[dict]:
        """Verdicts with their record's text; ``latest_only`` keeps each record's most recent verdict."""
        query = (sa.select(verdicts, records.c.title, records.c.body, records.c.project, records.c.kind,
                           records.c.url, records.c.created_at.label("record_created_at"))
                 .join(records, records.c.id == verdicts.c.record_id).order_by(verdicts.c.id))
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        if latest_only:
            rows = list({r["record_id"]: r for r in rows}.values())
        return rows


def _where_projects_since(query, projects, since):
    if projects is not None:
        query = query.where(sa.func.lower(records.c.project).in_([p.lower() for p in projects]))
    if since is not None:
        query = query.where(sa.func.coalesce(records.c.updated_at, records.c.created_at) >= since)
    return query
