"""The early-warning endpoints of the service: ``/v1/vuln/score``, ``/v1/vuln/items`` (filters, most probable first,
cursor pagination), ``/v1/vuln/items/{id}`` and ``POST /v1/vuln/items/{id}/verdict``.

The items are those of a scan (vuln/scan.py) of the manifests the server was started with, over the store: the
same dependencies, mapping, scores and known-or-new decision as `transferlab vuln scan`, held in memory and
refreshed on :meth:`VulnService.refresh` (at start, after a verdict's record changes, and by the watch loop).  One
item is one stored record that concerns at least one of the dependencies; its ``id`` is the record's id.  A
verdict's reviewer is the authenticated account, never a field of the request.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations at run time.
import base64
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..vuln.inert import safe_url
from .errors import ApiError

STATUSES = ("early-warning", "probably-disclosed", "disclosed")


@dataclass
class VulnConfig:
    cascade: str | None = None  # folder; None: the shipped cascade
    manifests: list[str] = field(default_factory=list)
    mapping: str | None = None
    osv: str | None = None
    offline: bool = True
    runtime: str = "auto"
    retrain_dir: str | None = None  # where "retrain now" writes new cascades (one folder per run)


def _status(item) -> str:
    return "disclosed" if item.advisory else "probably-disclosed" if item.probable else "early-warning"


def _iso(value) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


class VulnService:
    """A scan's items, kept in memory, and the store they come from."""

    def __init__(self, store, cascade, config: VulnConfig, *, mapper=None, advisories=None):
        self.store, self.cascade, self.config = store, cascade, config
        self.mapper, self.advisories = mapper, advisories
        self._items: dict[int, dict] = {}
        self.retrain_job: dict = {}
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()  # one scoring at a time: a runtime's state is not shared across threads
        self.refreshed_at: str | None = None

    @classmethod
    def open(cls, store, config: VulnConfig) -> "VulnService":
        from ..vuln.advisories import AdvisoryIndex
        from ..vuln.cascade import Cascade
        from ..vuln.mapping import RepositoryMapper

        cascade = Cascade.load(config.cascade or Path(__file__).parents[1] / "vuln" / "cascade_default",
                               runtime=config.runtime)
        mapper = RepositoryMapper(config.mapping, online=not config.offline)
        advisories = AdvisoryIndex.from_directory(config.osv) if config.osv else None
        return cls(store, cascade, config, mapper=mapper, advisories=advisories)

    # ------------------------------------------------------------------------------------------ items
    def refresh(self) -> int:
        """Scan again (scoring only what this cascade has not scored); returns the number of items."""
        from ..vuln.scan import scan

        with self._model_lock:
            result = scan(self.config.manifests, self.store, self.cascade, self.mapper, self.advisories,
                          progress=False)
        items: dict[int, dict] = {}
        for dep in result.dependencies:
            for item in dep.items:
                rid = int(item.record["id"])
                entry = items.get(rid) or self._entry(item)
                entry["dependencies"].append({"package": dep.dependency.name, "ecosystem": dep.dependency.ecosystem,
                                              "version": dep.dependency.version or dep.dependency.spec,
                                              "manifest": dep.dependency.source,
                                              "mapping": dep.mapping.provenance})
                items[rid] = entry
        self._attach_verdicts(items)
        with self._lock:
            self._items = items
            self.refreshed_at = result.generated_at
        return len(items)

    def _entry(self, item) -> dict:
        rec = item.record
        refs = rec.get("refs") or {}
        return {
            "id": int(rec["id"]), "title": rec.get("title") or "", "body": rec.get("body") or "",
            "url": safe_url(rec.get("url")), "source": rec["source"], "kind": rec["kind"], "project": rec["project"],
            "author": rec.get("author"), "created_at": _iso(rec.get("created_at")),
            "updated_at": _iso(rec.get("updated_at")),
            "stage1": round(float(item.stage1), 6), "stage2": round(float(item.stage2), 6),
            "probability": round(float(item.rank_score), 6), "status": _status(item),
            "advisory": item.advisory or (item.probable[0] if item.probable else None),
            "disclosure_score": item.probable[1] if item.probable and not item.advisory else None,
            "evidence": [s["sentence"] for s in (item.evidence or {}).get("sentences", [])],
            "ids": {k: list(refs.get(k, [])) for k in ("cve", "ghsa", "cwe") if refs.get(k)},
            "dependencies": [], "verdict": None, "verdicts": [],
        }

    def _attach_verdicts(self, items: dict[int, dict]) -> None:
        history: dict[int, list[dict]] = {}
        for v in self.store.verdicts(latest_only=False):
            history.setdefault(int(v["record_id"]), []).append(
                {"verdict": v["verdict"], "reviewer": v["reviewer"], "comment": v["comment"],
                 "at": _iso(v["created_at"])})
        for rid, entry in items.items():
            entry["verdicts"] = history.get(rid, [])
            entry["verdict"] = entry["verdicts"][-1] if entry["verdicts"] else None

    def items(self, *, package: str | None = None, ecosystem: str | None = None, status: str | None = None,
              verdict: str | None = None, since: datetime | None = None) -> list[dict]:
        """Filtered items, most probable first (ties: lower id first)."""
        with self._lock:
            rows = list(self._items.values())
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=timezone.utc)  # a date without a zone is UTC, as the store's times are

        def keep(it: dict) -> bool:
            deps = it["dependencies"]
            if package and not any(d["package"].lower() == package.lower() for d in deps):
                return False
            if ecosystem and not any(d["ecosystem"].lower() == ecosystem.lower() for d in deps):
                return False
            if status and it["status"] != status:
                return False
            if verdict is not None:
                current = it["verdict"]["verdict"] if it["verdict"] else "none"
                if current != verdict:
                    return False
            if since and (it["created_at"] is None or datetime.fromisoformat(it["created_at"]) < since):
                return False
            return True

        return sorted(filter(keep, rows), key=lambda it: (-it["probability"], it["id"]))

    def item(self, item_id: int) -> dict | None:
        with self._lock:
            return self._items.get(item_id)

    def judge(self, item_id: int, verdict: str, reviewer: str, comment: str | None) -> dict:
        if self.item(item_id) is None:
            raise ApiError(404, f"no flagged item with id {item_id}", where="id",
                           hint="ids come from GET /v1/vuln/items")
        from ..vuln.store import StoreError

        try:
            self.store.add_verdict(item_id, verdict, reviewer, comment, cascade_version=self.cascade.version)
        except StoreError as exc:
            raise ApiError(422, exc.message, where="body", hint=exc.hint) from None
        with self._lock:
            self._attach_verdicts({item_id: self._items[item_id]})
            return self._items[item_id]

    # ------------------------------------------------------------------------------------------ retrain
    def start_retrain(self, by: str) -> dict:
        """Retrain the cascade with every verdict so far, in the background (`vuln retrain`); the new cascade goes
        to a new folder under ``retrain_dir`` and is reported before/after, never swapped in by itself."""
        if not self.config.retrain_dir:
            raise ApiError(409, "retraining is not configured on this server", where="retrain",
                           hint="start the server with --retrain-dir DIR")
        with self._lock:
            if self.retrain_job.get("state") == "running":
                raise ApiError(409, "a retrain is already running", where="retrain", hint="wait for it to finish")
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            self.retrain_job = {"state": "running", "by": by, "started": stamp, "log": [],
                                "out": str(Path(self.config.retrain_dir) / f"cascade-{stamp}")}
        threading.Thread(target=self._retrain, name="retrain", daemon=True).start()
        return dict(self.retrain_job)

    def _retrain(self) -> None:
        from ..vuln.retrain import retrain

        job = self.retrain_job
        try:
            report = retrain(self.cascade, self.store, job["out"], log=lambda m: job["log"].append(str(m)[:500]))
            job.update(state="done", report=report)
        except Exception as exc:  # noqa: BLE001 - shown to the admin; the server goes on
            job.update(state="failed", error=f"{type(exc).__name__}: {str(exc)[:500]}")

    # ------------------------------------------------------------------------------------------ scoring
    def score(self, texts: list[str]) -> list[dict]:
        with self._model_lock:
            return self._score(texts)

    def _score(self, texts: list[str]) -> list[dict]:
        s = self.cascade.score(texts)
        out = []
        for i, text in enumerate(texts):
            stage2 = None if s["stage2"][i] != s["stage2"][i] else round(float(s["stage2"][i]), 6)
            entry = {"stage1": round(float(s["stage1"][i]), 6), "stage2": stage2, "flagged": bool(s["flagged"][i])}
            if entry["flagged"]:
                entry["evidence"] = [e["sentence"] for e in self.cascade.explain(text)]
            out.append(entry)
        return out


# ------------------------------------------------------------------------------------------------ the API
class ScoreRequest(BaseModel):
    texts: list[str] = Field(..., min_length=1, description="issue, commit or mail texts (title and body together)")


class VerdictRequest(BaseModel):
    # extra="forbid": a body that names a reviewer (or anything else) is refused; the reviewer is the account
    model_config = ConfigDict(extra="forbid")
    verdict: Literal["vulnerability", "security-not-vuln", "not-security"]
    comment: str | None = Field(None, max_length=4000)


def encode_cursor(item: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps([item["probability"], item["id"]]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, int]:
    try:
        prob, rid = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return float(prob), int(rid)
    except (ValueError, TypeError):
        raise ApiError(422, "not a cursor this server gave out", where="cursor",
                       hint="pass the next_cursor of the previous page, or none for the first page") from None


def register(app, service: VulnService, *, reader, writer, rate_limited, settings) -> None:
    """Add the /v1/vuln routes to ``app``."""
    import asyncio

    from fastapi import Depends, Query

    @app.get("/v1/vuln/items", tags=["vuln"], dependencies=[Depends(rate_limited)])
    async def list_items(package: str | None = None, ecosystem: str | None = None,
                         status: Literal["early-warning", "probably-disclosed", "disclosed"] | None = None,
                         verdict: Literal["none", "vulnerability", "security-not-vuln", "not-security"] | None = None,
                         since: datetime | None = Query(None, description="created at or after (ISO 8601)"),
                         limit: int = Query(50, ge=1, le=500), cursor: str | None = None):
        rows = service.items(package=package, ecosystem=ecosystem, status=status, verdict=verdict, since=since)
        if cursor:
            after = decode_cursor(cursor)
            rows = [r for r in rows if (-r["probability"], r["id"]) > (-after[0], after[1])]
        page = rows[:limit]
        return {"items": [{k: v for k, v in r.items() if k not in ("body", "verdicts")} for r in page],
                "next_cursor": encode_cursor(page[-1]) if len(rows) > limit else None,
                "refreshed_at": service.refreshed_at}

    @app.get("/v1/vuln/items/{item_id}", tags=["vuln"], dependencies=[Depends(rate_limited)])
    async def get_item(item_id: int):
        item = service.item(item_id)
        if item is None:
            raise ApiError(404, f"no flagged item with id {item_id}", where="id",
                           hint="ids come from GET /v1/vuln/items")
        return item

    @app.post("/v1/vuln/items/{item_id}/verdict", tags=["vuln"], status_code=201,
              responses={401: {"description": "no or a wrong token"}, 404: {"description": "no such item"}})
    async def post_verdict(item_id: int, body: VerdictRequest, user=Depends(writer)):
        return await asyncio.to_thread(service.judge, item_id, body.verdict, user.name, body.comment)

    def admin(user=Depends(writer)):
        if not user.is_admin:
            raise ApiError(403, "this needs an admin account", where="role", hint="ask an admin")
        return user

    @app.post("/v1/admin/retrain", tags=["admin"], status_code=202,
              responses={403: {"description": "not an admin"}, 409: {"description": "not configured or running"}})
    async def retrain_now(user=Depends(admin)):
        return service.start_retrain(user.name)

    @app.get("/v1/admin/retrain", tags=["admin"])
    async def retrain_status(user=Depends(admin)):
        return service.retrain_job or {"state": "never run"}

    @app.post("/v1/vuln/score", tags=["vuln"], dependencies=[Depends(rate_limited)])
    async def score(body: ScoreRequest):
        if len(body.texts) > settings.max_texts:
            raise ApiError(413, f"{len(body.texts)} texts in one request; at most {settings.max_texts}",
                           where="texts", hint="split the texts over several requests")
        for i, text in enumerate(body.texts):
            if len(text) > settings.max_text_chars:
                raise ApiError(413, f"text {i} has {len(text)} characters; at most {settings.max_text_chars}",
                               where=f"texts[{i}]", hint="send the title and the first part of the body")
        return {"cascade": service.cascade.version, "results": await asyncio.to_thread(service.score, body.texts)}
