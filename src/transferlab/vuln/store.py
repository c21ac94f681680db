"""Where ingested records, checkpoints and skips live: SQLite by default, PostgreSQL by URL (SQLAlchemy + Alembic).

The schema is owned by the Alembic migrations in ``migrations/``; :meth:`Store.open` brings any database to the
newest revision before use, so an older store keeps working after an upgrade.  A batch from a connector is
written in one transaction (records upserted by ``(source, native_id)``, skips, checkpoint), which is what
makes ingestion idempotent and resumable.  Every statement is built by SQLAlchemy with bound parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from transferlab.errors import TransferLabError

from .records import Record
from .sources.base import Batch

DEFAULT_URL = "sqlite:///transferlab-vuln.db"
MIGRATIONS = Path(__file__).parent / "migrations"


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


def _strictly_newer(incoming: datetime | None, stored: datetime | None) -> bool:
    """A stored record is replaced only by a later version: reading the same page again changes nothing."""
    return incoming is not None and (stored is None or incoming > stored)


@dataclass
class Written:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skips: int = 0


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
    return sa.create_engine(parsed, future=True)


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

    def migrate(self, revision: str = "head") -> None:
        from alembic import command
        from alembic.config import Config
        from alembic.util.exc import CommandError

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as conn:
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
            return conn.execute(sa.select(checkpoints.c.state).where(checkpoints.c.key == key)).scalar_one_or_none()

    def write_batch(self, key: str, batch: Batch) -> Written:
        """Records, skips and the checkpoint of one batch, all or nothing."""
        now, written = _now(), Written()
        latest: dict[tuple[str, str], Record] = {}
        for record in batch.records:  # one row per identity: the newest version of it in this batch
            ident = (record.source, record.native_id)
            if ident not in latest or _newer(record.updated_at, latest[ident].updated_at):
                latest[ident] = record
        with self.engine.begin() as conn:
            self._upsert(conn, list(latest.values()), now, written)
            for skip in batch.skips:
                written.skips += self._skip(conn, key, skip.location, skip.reason, now)
            if batch.checkpoint is not None:
                self._set_checkpoint(conn, key, batch.checkpoint, now)
        written.unchanged += len(batch.records) - len(latest)
        return written

    def _upsert(self, conn, batch: list[Record], now: datetime, written: Written) -> None:
        by_source: dict[str, list[Record]] = {}
        for record in batch:
            by_source.setdefault(record.source, []).append(record)
        for source, items in by_source.items():
            for start in range(0, len(items), 500):
                chunk = items[start:start + 500]
                stored = dict(conn.execute(
                    sa.select(records.c.native_id, records.c.updated_at)
                    .where(records.c.source == source, records.c.native_id.in_([r.native_id for r in chunk]))).all())
                fresh = [_row(r, now) for r in chunk if r.native_id not in stored]
                if fresh:
                    conn.execute(records.insert(), fresh)
                    written.new += len(fresh)
                newer = [r for r in chunk if r.native_id in stored and _strictly_newer(r.updated_at,
                                                                                        stored[r.native_id])]
                for record in newer:
                    row = _row(record, now)
                    del row["first_seen"]
                    conn.execute(records.update().where(records.c.source == source,
                                                        records.c.native_id == record.native_id).values(**row))
                if newer:  # the text changed: its scores are stale and it is scored again on the next scan
                    ids = sa.select(records.c.id).where(records.c.source == source,
                                                        records.c.native_id.in_([r.native_id for r in newer]))
                    conn.execute(scores.delete().where(scores.c.record_id.in_(ids)))
                replaced = {r.native_id for r in newer}
                same = [r.native_id for r in chunk if r.native_id in stored and r.native_id not in replaced]
                if same:  # read again unchanged: only when it was last seen moves, in one statement
                    conn.execute(records.update().where(records.c.source == source, records.c.native_id.in_(same))
                                 .values(last_seen=now))
                written.updated += len(newer)
                written.unchanged += len(same)

    def _skip(self, conn, key: str, location: str, reason: str, now: datetime) -> int:
        """A skip seen again (the same input read twice) is counted once, with how often it was met."""
        match = (skips.c.source_key == key, skips.c.location == location, skips.c.reason == reason)
        found = conn.execute(sa.select(skips.c.id).where(*match)).scalar_one_or_none()
        if found is None:
            conn.execute(skips.insert().values(source_key=key, location=location, reason=reason, first_seen=now,
                                               times=1))
            return 1
        conn.execute(skips.update().where(skips.c.id == found).values(times=skips.c.times + 1))
        return 0

    def _set_checkpoint(self, conn, key: str, state: dict, now: datetime) -> None:
        updated = conn.execute(checkpoints.update().where(checkpoints.c.key == key).values(state=state, updated_at=now))
        if updated.rowcount == 0:
            conn.execute(checkpoints.insert().values(key=key, state=state, updated_at=now))

    def reset_checkpoint(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(checkpoints.delete().where(checkpoints.c.key == key))

    # ---- reading ---------------------------------------------------------------------------------------------
    def count(self, **where) -> int:
        query = sa.select(sa.func.count()).select_from(records)
        for column, value in where.items():
            query = query.where(records.c[column] == value)
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def skipped(self, key: str | None = None) -> list[dict]:
        query = sa.select(skips).order_by(skips.c.id)
        if key is not None:
            query = query.where(skips.c.source_key == key)
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
        with self.engine.begin() as conn:
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
        with self.engine.begin() as conn:
            if conn.execute(sa.select(records.c.id).where(records.c.id == record_id)).scalar_one_or_none() is None:
                raise StoreError(f"no record with id {record_id}", where=self.url,
                                 hint="ids are the first column of `transferlab vuln triage`")
            result = conn.execute(verdicts.insert().values(
                record_id=record_id, verdict=verdict, reviewer=reviewer.strip(), comment=comment,
                created_at=_now(), cascade_version=cascade_version))
            return int(result.inserted_primary_key[0])

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
