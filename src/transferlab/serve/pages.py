"""The triage pages: server-rendered HTML that works without JavaScript (``static/triage.js`` only adds keyboard
shortcuts: j/k to move, v/s/n to judge).

* Login with a name and password (serve/accounts.py) gives a session cookie: a random 256-bit id, kept on the
  server only as its SHA-256, HttpOnly, SameSite=Strict, Secure when the page was served over TLS; sessions end
  after ``SESSION_HOURS`` idle, on logout, or when the server restarts (they are held in memory: one process).
* Every form carries a CSRF token: the session's for logged-in forms, a double-submit cookie for the login form;
  a POST without the right one is refused (403).
* Everything ingested is rendered inert: Jinja2 autoescaping for every value, links only for http(s) (already
  filtered by vuln_api), ``rel="noopener noreferrer nofollow"``, and the app-wide Content-Security-Policy allows no
  inline script (the shortcuts come from /static).
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations at run time.
import csv
import hashlib
import hmac
import io
import secrets
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..vuln.inert import csv_cell
from .errors import ApiError

HERE = Path(__file__).parent
SESSION_COOKIE, LOGIN_COOKIE = "tl_session", "tl_login"
SESSION_HOURS = 12
PALETTE = ["#3b6fd8", "#e07b39", "#3a9b5c", "#b5446e", "#7d5bbe", "#8c8c2a", "#2a8c8c", "#777777"]


class Sessions:
    """Logged-in sessions, in memory, keyed by the SHA-256 of the cookie's value."""

    def __init__(self, idle_hours: float = SESSION_HOURS):
        self.idle = idle_hours * 3600
        self._by_hash: dict[str, dict] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(sid: str) -> str:
        return hashlib.sha256(sid.encode()).hexdigest()

    def create(self, user) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._by_hash[self._key(sid)] = {"user": user, "csrf": secrets.token_urlsafe(32),
                                             "seen": time.monotonic()}
        return sid

    def get(self, sid: str | None) -> dict | None:
        if not sid:
            return None
        now = time.monotonic()
        with self._lock:
            entry = self._by_hash.get(self._key(sid))
            if entry is None or now - entry["seen"] > self.idle:
                self._by_hash.pop(self._key(sid), None)
                return None
            entry["seen"] = now
            return entry

    def drop(self, sid: str | None) -> None:
        if sid:
            with self._lock:
                self._by_hash.pop(self._key(sid), None)


def _same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


def _local(path: str | None) -> str:
    """Where to go after login: a path on this site only (never //host or a scheme)."""
    return path if path and path.startswith("/") and not path.startswith("//") and "\\" not in path else "/queue"


def highlight(body: str, sentences: list[str]) -> list[tuple[str, bool]]:
    """``body`` cut into (text, is evidence) parts: every exact occurrence of an evidence sentence is marked."""
    spans = []
    for s in sentences:
        s = s.strip()
        start = body.find(s) if s else -1
        while start >= 0:
            spans.append((start, start + len(s)))
            start = body.find(s, start + len(s))
    parts, at = [], 0
    for start, end in sorted(spans):
        if start < at:
            continue
        parts += [(body[at:start], False), (body[start:end], True)]
        at = end
    parts.append((body[at:], False))
    return [p for p in parts if p[0]]


def flags_chart(items: list[dict], days: int = 30, width: int = 720, height: int = 140) -> dict | None:
    """Bars of flags per day (by creation date) per package over the last ``days`` days with flags, stacked."""
    per_day: dict[str, dict[str, int]] = {}
    for it in items:
        day = (it.get("created_at") or "")[:10]
        if not day:
            continue
        for p in sorted({d["package"] for d in it["dependencies"]}):
            per_day.setdefault(day, {}).setdefault(p, 0)
            per_day[day][p] += 1
    if not per_day:
        return None
    last = datetime.fromisoformat(max(per_day))
    dates = [(last - timedelta(days=i)).date().isoformat() for i in range(days - 1, -1, -1)]
    packages = sorted({p for d in per_day.values() for p in d})
    colors = {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(packages)}
    top = max(sum(per_day.get(d, {}).values()) for d in dates) or 1
    plot_h, bar_w = height - 36, (width - 20) / days
    bars = []
    for i, day in enumerate(dates):
        y = height - 16
        for p in packages:
            n = per_day.get(day, {}).get(p, 0)
            if n:
                h = plot_h * n / top
                y -= h
                bars.append({"x": round(10 + i * bar_w, 1), "y": round(y, 1), "w": round(bar_w * 0.8, 1),
                             "h": round(h, 1), "color": colors[p], "label": f"{day}: {p} {n}"})
    ticks = [{"x": round(10 + i * bar_w, 1), "label": dates[i][5:]} for i in range(0, days, 7)]
    legend = [{"x": 10 + 110 * i, "color": colors[p], "label": p[:16]} for i, p in enumerate(packages[:6])]
    return {"width": width, "height": height, "bars": bars, "ticks": ticks, "legend": legend}


def register(app, service, accounts, settings, writer_throttle) -> None:
    """Add the pages (and /static) to ``app``.  ``writer_throttle(user)`` applies the account's rate budget."""
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(["html"]))
    sessions = Sessions()
    app.state.sessions = sessions
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def session_of(request: Request) -> dict | None:
        return sessions.get(request.cookies.get(SESSION_COOKIE))

    def page(name: str, request: Request, status: int = 200, **values) -> HTMLResponse:
        s = session_of(request)
        html = env.get_template(name).render(user=s["user"] if s else None, csrf=s["csrf"] if s else "", **values)
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    def need_reader(request: Request):
        if settings.auth_reads and session_of(request) is None:
            raise _Redirect(f"/login?next={request.url.path}")

    def need_writer(request: Request, csrf: str) -> dict:
        s = session_of(request)
        if s is None:
            raise ApiError(401, "log in to judge", where="session", hint="/login")
        if not _same(csrf, s["csrf"]):
            raise ApiError(403, "the form's CSRF token is missing or wrong", where="csrf",
                           hint="reload the page and submit it again")
        writer_throttle(s["user"])
        return s

    class _Redirect(Exception):
        def __init__(self, to: str):
            self.to = to

    @app.exception_handler(_Redirect)
    async def redirect(request: Request, exc: _Redirect):
        return RedirectResponse(exc.to, status_code=303)

    def cookie_kw(request: Request) -> dict:
        return {"httponly": True, "samesite": "strict", "secure": request.url.scheme == "https", "path": "/"}

    # ------------------------------------------------------------------------------------------ login
    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_form(request: Request, next: str = "/queue"):
        token = secrets.token_urlsafe(32)
        res = page("login.html", request, login_csrf=token, next=_local(next), error=None)
        res.set_cookie(LOGIN_COOKIE, token, max_age=1800, **cookie_kw(request))
        return res

    @app.post("/login", include_in_schema=False)
    async def login(request: Request, name: str = Form(...), password: str = Form(...), csrf: str = Form(""),
                    next: str = Form("/queue")):
        if not _same(csrf, request.cookies.get(LOGIN_COOKIE)):
            raise ApiError(403, "the login form's CSRF token is missing or wrong", where="csrf",
                           hint="open /login again")
        import asyncio

        user = await asyncio.to_thread(accounts.login, name, password) if accounts is not None else None
        if user is None:
            token = secrets.token_urlsafe(32)
            res = page("login.html", request, status=401, login_csrf=token, next=_local(next),
                       error="Wrong name or password.")
            res.set_cookie(LOGIN_COOKIE, token, max_age=1800, **cookie_kw(request))
            return res
        sessions.drop(request.cookies.get(SESSION_COOKIE))
        res = RedirectResponse(_local(next), status_code=303)
        res.set_cookie(SESSION_COOKIE, sessions.create(user), max_age=SESSION_HOURS * 3600, **cookie_kw(request))
        res.delete_cookie(LOGIN_COOKIE, path="/")
        return res

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request, csrf: str = Form("")):
        s = session_of(request)
        if s is not None and not _same(csrf, s["csrf"]):
            raise ApiError(403, "the form's CSRF token is missing or wrong", where="csrf")
        sessions.drop(request.cookies.get(SESSION_COOKIE))
        res = RedirectResponse("/login", status_code=303)
        res.delete_cookie(SESSION_COOKIE, path="/")
        return res

    # ------------------------------------------------------------------------------------------ queue
    def queue(package=None, source=None, status=None, since=None) -> list[dict]:
        rows = service.items(package=package or None, status=status or None, verdict="none", since=since)
        return [r for r in rows if not source or r["source"] == source]

    @app.get("/", include_in_schema=False)
    async def home():
        return RedirectResponse("/queue", status_code=303)

    @app.get("/queue", response_class=HTMLResponse, include_in_schema=False)
    async def queue_page(request: Request, package: str = "", source: str = "", status: str = "", since: str = ""):
        need_reader(request)
        try:
            when = datetime.fromisoformat(since).replace(tzinfo=timezone.utc) if since else None
        except ValueError:
            raise ApiError(422, f"not a date: {since!r}", where="since", hint="YYYY-MM-DD") from None
        items = queue(package, source, status, when)
        everything = service.items()
        counts: dict[str, int] = {}
        for it in items:
            for p in {d["package"] for d in it["dependencies"]}:
                counts[p] = counts.get(p, 0) + 1
        return page("queue.html", request, items=items, counts=sorted(counts.items(), key=lambda kv: -kv[1]),
                    packages=sorted({d["package"] for it in everything for d in it["dependencies"]}),
                    sources=sorted({it["source"] for it in everything}),
                    statuses=["early-warning", "probably-disclosed", "disclosed"],
                    filters={"package": package, "source": source, "status": status, "since": since},
                    chart=flags_chart(everything))

    # ------------------------------------------------------------------------------------------- item
    def neighbours(item_id: int) -> tuple[int | None, int | None]:
        ids = [r["id"] for r in queue()]
        if item_id not in ids:
            return None, (ids[0] if ids else None)
        i = ids.index(item_id)
        return (ids[i - 1] if i > 0 else None), (ids[i + 1] if i + 1 < len(ids) else None)

    @app.get("/items/{item_id}", response_class=HTMLResponse, include_in_schema=False)
    async def item_page(request: Request, item_id: int):
        need_reader(request)
        item = service.item(item_id)
        if item is None:
            raise ApiError(404, f"no flagged item with id {item_id}", where="id", hint="see /queue")
        prev, nxt = neighbours(item_id)
        return page("item.html", request, item=item, prev=prev, next=nxt,
                    body_parts=highlight(item["body"], item["evidence"]))

    @app.post("/items/{item_id}/verdict", include_in_schema=False)
    async def judge_form(request: Request, item_id: int, verdict: str = Form(...), comment: str = Form(""),
                         csrf: str = Form("")):
        s = need_writer(request, csrf)
        if verdict not in ("vulnerability", "security-not-vuln", "not-security"):
            raise ApiError(422, f"unknown verdict {verdict!r}", where="verdict")
        _, nxt = neighbours(item_id)
        import asyncio

        await asyncio.to_thread(service.judge, item_id, verdict, s["user"].name, comment.strip() or None)
        return RedirectResponse(f"/items/{nxt}" if nxt else "/queue", status_code=303)

    # ------------------------------------------------------------------------------------------ admin
    def need_admin(request: Request, csrf: str | None = None) -> dict:
        s = session_of(request)
        if s is None:
            raise _Redirect(f"/login?next={request.url.path}")
        if not s["user"].is_admin:
            raise ApiError(403, "this page is for admins", where="role", hint="ask an admin")
        if csrf is not None and not _same(csrf, s["csrf"]):
            raise ApiError(403, "the form's CSRF token is missing or wrong", where="csrf",
                           hint="reload the page and submit it again")
        return s

    @app.get("/admin", response_class=HTMLResponse, include_in_schema=False)
    async def admin_page(request: Request):
        need_admin(request)
        return page("admin.html", request, job=service.retrain_job, configured=bool(service.config.retrain_dir),
                    cascade=service.cascade.version)

    @app.post("/admin/retrain", include_in_schema=False)
    async def admin_retrain(request: Request, csrf: str = Form("")):
        s = need_admin(request, csrf)
        service.start_retrain(s["user"].name)
        return RedirectResponse("/admin", status_code=303)

    # ----------------------------------------------------------------------------------------- export
    @app.get("/export.csv", include_in_schema=False)
    async def export(request: Request):
        need_reader(request)
        buf = io.StringIO()
        w = csv.writer(buf)
        cols = ["id", "title", "url", "project", "source", "kind", "packages", "status", "stage1", "stage2",
                "verdict", "reviewer", "judged_at", "comment"]
        w.writerow(cols)
        for it in service.items():
            v = it["verdict"]
            if not v:
                continue
            w.writerow([csv_cell(x) for x in (it["id"], it["title"], it["url"] or "", it["project"], it["source"],
                                              it["kind"], " ".join(sorted({d["package"] for d in it["dependencies"]})),
                                              it["status"], it["stage1"], it["stage2"], v["verdict"], v["reviewer"],
                                              v["at"], v["comment"] or "")])
        return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="judged.csv"'})
