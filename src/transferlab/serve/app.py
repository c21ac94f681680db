"""The HTTP API (``transferlab serve``): FastAPI, versioned under ``/v1``, OpenAPI at ``/docs``.

Endpoints so far: ``POST /v1/classify`` (texts through any loaded classifier, micro-batched across concurrent
requests, see batching.py), ``GET /v1/models``, ``GET /healthz`` (the process answers), ``GET /readyz`` (every model
loaded), ``GET /metrics`` (Prometheus text format: requests by route and status, latency histogram, queue depth,
batch sizes).

Limits, each answered in the one error shape of errors.py: request body size (413, before the body is read), texts
per request and characters per text (413, naming the text), a per-client rate limit (429 with Retry-After; the
client is its API token, or its address for open reads), a full batching queue (503 with Retry-After).  Every
response carries a Content-Security-Policy that forbids inline scripts, ``nosniff`` and ``no-referrer``; CORS is off
unless origins are configured.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations at run time.
import logging
import math
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .batching import MicroBatcher, QueueFull
from .errors import ApiError, error_body
from .limits import BodyLimit, RateLimiter

log = logging.getLogger("transferlab.serve")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


@dataclass
class Settings:
    """What ``transferlab serve`` is started with (its flags)."""

    models: dict[str, str] = field(default_factory=dict)  # name -> model folder
    runtime: str = "auto"
    max_body_bytes: int = 1 << 20
    max_texts: int = 256  # per request
    max_text_chars: int = 20_000
    rate: float = 20.0  # requests per second per client (0: no limit)
    burst: int = 40
    max_batch: int = 64  # texts per forward pass
    max_wait_ms: float = 5.0
    max_queue: int = 1024  # texts waiting, per model
    cors_origins: list[str] = field(default_factory=list)
    db: str | None = None  # the store (accounts; the early-warning items)
    auth_reads: bool = False  # reads need a token too (writes always do)
    vuln: "object | None" = None  # a vuln_api.VulnConfig: serve the early-warning items of these manifests


class Metrics:
    """The Prometheus series the service exports, in a registry of its own (two apps in one process, as in the
    tests, never share counters)."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("transferlab_requests", "HTTP requests answered", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("transferlab_request_seconds", "time to answer a request", ["route"],
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30), registry=self.registry)
        self.queue = Gauge("transferlab_queue_depth", "texts waiting for a batch", ["model"], registry=self.registry)
        self.batch = Histogram("transferlab_batch_texts", "texts per forward pass", ["model"],
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=self.registry)
        self.texts = Counter("transferlab_texts_scored", "texts scored", ["model"], registry=self.registry)
        self.refused = Counter("transferlab_refused", "requests refused by a limit", ["reason"],
                               registry=self.registry)
        self.flagged = Gauge("transferlab_items_flagged", "early-warning items of the served manifests, by status",
                             ["status"], registry=self.registry)


class ClassifyRequest(BaseModel):
    texts: list[str] = Field(..., min_length=1, description="the texts to classify")
    model: str | None = Field(None, description="which loaded model (optional when one is loaded)")


class Result(BaseModel):
    label: str | list[str] = Field(..., description="the decision (a list for multi-label models)")
    scores: dict[str, float] = Field(..., description="each label's (calibrated) probability")


class ClassifyResponse(BaseModel):
    model: str
    results: list[Result]


def _classify_fn(model) -> Callable[[list[str]], list[dict]]:
    labels = [str(x) for x in model.labels_]

    def run(texts: list[str]) -> list[dict]:
        proba = model.predict_proba(texts)
        decided = model.decode(proba)
        return [{"label": label if isinstance(label, str) else [str(x) for x in label],
                 "scores": {lab: round(float(p), 6) for lab, p in zip(labels, row)}}
                for label, row in zip(decided, proba)]
    return run


def load_models(settings: Settings) -> dict:
    """name -> loaded classifier, each with its fastest checked runtime (``settings.runtime``)."""
    from ..errors import ConfigError
    from ..models.base import saved_task
    from ..models.classifier import TextClassifier

    models = {}
    for name, path in settings.models.items():
        if saved_task(Path(path)) != "classification":
            raise ConfigError("only text classifiers can be served so far", where=str(path),
                              hint="serve a folder written by `transferlab train` on a classification task")
        models[name] = TextClassifier.load(path, runtime=settings.runtime)
    return models


def create_app(settings: Settings, *, models: dict | None = None, accounts=None, vuln=None):
    """The FastAPI application.  ``models``: already loaded classifiers by name (tests); else loaded from
    ``settings.models`` at start-up.  ``accounts``: an :class:`~transferlab.serve.accounts.Accounts` (else opened on
    ``settings.db`` when given).  ``vuln``: a :class:`~transferlab.serve.vuln_api.VulnService` (else opened from
    ``settings.vuln`` on the store, and scanned once at start-up)."""
    store = None
    if settings.db and (accounts is None or (vuln is None and settings.vuln is not None)):
        from ..vuln.store import Store

        store = Store.open(settings.db)
    if accounts is None and store is not None:
        from .accounts import Accounts

        accounts = Accounts(store)
    if vuln is None and settings.vuln is not None:
        from ..errors import ConfigError
        from .vuln_api import VulnService

        if store is None:
            raise ConfigError("the early-warning items live in the store", where="--db", hint="--db URL")
        vuln = VulnService.open(store, settings.vuln)
    if settings.auth_reads and accounts is None:
        from ..errors import ConfigError

        raise ConfigError("--auth-reads needs accounts, which live in the store", where="--db",
                          hint="--db URL (users and tokens: transferlab serve user add / token create)")
    metrics = Metrics()
    state: dict = {"models": {}, "batchers": {}, "ready": False}
    limiter = RateLimiter(settings.rate, settings.burst)

    @asynccontextmanager
    async def lifespan(app):
        loaded = models if models is not None else load_models(settings)
        for name, model in loaded.items():
            def on_batch(n, requests, seconds, name=name):
                metrics.batch.labels(name).observe(n)
                metrics.texts.labels(name).inc(n)
            state["batchers"][name] = MicroBatcher(_classify_fn(model), max_batch=settings.max_batch,
                                                   max_wait_ms=settings.max_wait_ms, max_queue=settings.max_queue,
                                                   name=name, on_batch=on_batch)
            state["batchers"][name].start()
        state["models"] = loaded
        if vuln is not None and vuln.refreshed_at is None:
            import asyncio

            await asyncio.to_thread(vuln.refresh)
        state["ready"] = True
        yield
        state["ready"] = False
        for batcher in state["batchers"].values():
            await batcher.stop()

    app = FastAPI(title="TransferLab", version="1", lifespan=lifespan,
                  description="TransferLab's models and the dependency early warning over HTTP. Errors: "
                              '{"error": {"what", "where", "hint"}}.')
    app.state.settings, app.state.metrics, app.state.core = settings, metrics, state

    # ------------------------------------------------------------------------------------------ errors
    def answer(status: int, what: str, where=None, hint=None, headers=None):
        return JSONResponse(error_body(what, where, hint), status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return answer(exc.status, exc.what, exc.where, exc.hint, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = (exc.errors() or [{}])[0]
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body") or "body"
        return answer(422, f"invalid request: {first.get('msg', 'does not match the schema')}", where,
                      "see the schema at /docs")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        what = {404: "no such endpoint", 405: "method not allowed here"}.get(exc.status_code, str(exc.detail))
        return answer(exc.status_code, what, request.url.path, "see /docs" if exc.status_code in (404, 405) else None)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):  # the traceback goes to the log, never to the client
        log.exception("unhandled error on %s", request.url.path)
        return answer(500, "internal error", request.url.path, "the server log has the details")

    # --------------------------------------------------------------------------------- every response
    @app.middleware("http")
    async def observe(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.requests.labels(request.method, path, str(response.status_code)).inc()
        metrics.latency.labels(path).observe(time.perf_counter() - started)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes,
                       on_refuse=lambda: metrics.refused.labels("body").inc())

    def address(request: Request) -> str:
        return f"addr:{request.client.host if request.client else '?'}"

    def throttle(key: str) -> None:
        wait = limiter.take(key)
        if wait > 0:
            metrics.refused.labels("rate").inc()
            raise ApiError(429, f"more than {settings.rate:g} requests per second from this client", where="client",
                           hint="slow down and retry after the Retry-After seconds",
                           headers={"Retry-After": str(max(1, math.ceil(wait)))})


    def current_user(request: Request):
        """The account a request's bearer token belongs to; None without a token (401 for a wrong one)."""
        auth = request.headers.get("authorization")
        if not auth:
            return None
        scheme, _, token = auth.partition(" ")
        user = accounts.authenticate(token.strip()) if accounts is not None and scheme.lower() == "bearer" else None
        if user is None:
            throttle(address(request))  # guessing tokens spends the address's requests (429 once they are gone)
            metrics.refused.labels("auth").inc()
            raise ApiError(401, "the token is not valid (unknown, revoked, or its user disabled)",
                           where="Authorization", hint="Authorization: Bearer tlk_... (transferlab serve token create)",
                           headers={"WWW-Authenticate": "Bearer"})
        return user

    def reader(request: Request):
        """Reads are open unless --auth-reads; a token that is sent must be valid either way."""
        user = current_user(request)
        if user is None and settings.auth_reads:
            metrics.refused.labels("auth").inc()
            raise ApiError(401, "this server needs a token for every request", where="Authorization",
                           hint="Authorization: Bearer tlk_... (transferlab serve token create)",
                           headers={"WWW-Authenticate": "Bearer"})
        return user

    def rate_limited(request: Request, user=Depends(reader)) -> None:
        """Each account has its own budget; anonymous clients share their address's."""
        throttle(f"user:{user.id}" if user is not None else address(request))

    def writer(request: Request):
        """Every write needs an account."""
        user = current_user(request)
        if user is None:
            metrics.refused.labels("auth").inc()
            raise ApiError(401, "writing needs an account", where="Authorization",
                           hint="Authorization: Bearer tlk_... (transferlab serve token create)",
                           headers={"WWW-Authenticate": "Bearer"})
        throttle(f"user:{user.id}")
        return user

    app.state.current_user, app.state.reader, app.state.writer = current_user, reader, writer
    app.state.vuln = vuln
    if vuln is not None:
        from .vuln_api import register

        register(app, vuln, reader=reader, writer=writer, rate_limited=rate_limited, settings=settings)
        from .pages import register as register_pages

        register_pages(app, vuln, accounts, settings, writer_throttle=lambda user: throttle(f"user:{user.id}"))

    # ------------------------------------------------------------------------------------------ probes
    @app.get("/healthz", tags=["ops"])
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz():
        if not state["ready"]:
            return answer(503, "not ready: models are loading", "readyz", "retry shortly")
        return {"status": "ready", "models": sorted(state["models"])}

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    async def metrics_endpoint():
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        for name, batcher in state["batchers"].items():
            metrics.queue.labels(name).set(batcher.depth)
        if vuln is not None:
            from .vuln_api import STATUSES

            items = vuln.items()
            for status in STATUSES:
                metrics.flagged.labels(status).set(sum(1 for it in items if it["status"] == status))
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # ------------------------------------------------------------------------------------------ models
    @app.get("/v1/models", tags=["models"])
    async def list_models():
        return {"models": [{"name": n, "labels": [str(x) for x in m.labels_], "family": m.model_config.family,
                            "runtime": getattr(getattr(m, "runtime_", None), "kind", None) or "torch"}
                           for n, m in sorted(state["models"].items())]}

    @app.post("/v1/classify", tags=["models"], response_model=ClassifyResponse,
              dependencies=[Depends(rate_limited)],
              responses={401: {"description": "no or a wrong token"},
                         413: {"description": "too many or too long texts"}, 429: {"description": "rate limit"},
                         503: {"description": "the batching queue is full"}})
    async def classify(body: ClassifyRequest):
        name = body.model
        if name is None:
            if len(state["models"]) != 1:
                raise ApiError(422, "several models are loaded: say which", where="model",
                               hint=f"one of {', '.join(sorted(state['models']))}")
            name = next(iter(state["models"]))
        if name not in state["batchers"]:
            raise ApiError(404, f"no model named {name!r} is loaded", where="model",
                           hint=f"one of {', '.join(sorted(state['models'])) or '(none)'}")
        if len(body.texts) > settings.max_texts:
            metrics.refused.labels("texts").inc()
            raise ApiError(413, f"{len(body.texts)} texts in one request; at most {settings.max_texts}",
                           where="texts", hint="split the texts over several requests")
        for i, text in enumerate(body.texts):
            if len(text) > settings.max_text_chars:
                metrics.refused.labels("text_length").inc()
                raise ApiError(413, f"text {i} has {len(text)} characters; at most {settings.max_text_chars}",
                               where=f"texts[{i}]", hint="send the part that matters (models read the first "
                                                         "few hundred tokens)")
        try:
            results = await state["batchers"][name].submit(list(body.texts))
        except QueueFull as exc:
            metrics.refused.labels("queue").inc()
            raise ApiError(503, f"the server is busy: {exc}", where="queue", hint="retry after a moment",
                           headers={"Retry-After": "1"}) from None
        return {"model": name, "results": results}

    return app
