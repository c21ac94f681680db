"""The HTTP side shared by the network connectors: retries, rate limits, limits, conditional requests, secrets.

* Retries are urllib3's :class:`~urllib3.util.Retry` on the session's adapters: 5xx answers, 429 and dropped
  connections are retried (GET and POST: the only POST is OSV's query, which changes nothing) within one budget
  of ``max_retries``.  Every wait counts against it, rate-limit waits included, and none is shorter than
  ``min_backoff``: ``Retry-After`` (also on a 403: GitHub's secondary rate limit, or its 403 with
  ``X-RateLimit-Remaining: 0`` and ``X-RateLimit-Reset``) says how long, an unparsable one falls back to the
  exponential backoff, and a wait over ``max_wait`` ends the run with a :class:`SourceError` instead.
* Every answer must arrive within ``deadline`` seconds, connecting and headers included, and ``max_bytes`` bytes
  (after decompression); streamed files (GH Archive hours) have their own, larger ``stream_deadline`` and
  ``stream_max_bytes`` for the body.  A try the deadline cut is not retried.
* Whatever a server answers (a redirect to ``ftp:`` or to no URL at all, headers of any length), the caller gets
  a :class:`SourceError` or an answer, never another exception.
* 401, 403 and other 4xx end the run with what the server said; 404 raises :class:`NotFound`, which a
  connector may count as a skip for one item (a deleted issue) instead of ending the run.
* A credential (token, API key, basic auth) is bound to one origin, the scheme, host and port of the configured
  base URL (:meth:`HttpClient.bind_credential`), and sent only to that origin, on every request and redirect.
  A plain ``http://`` origin with a credential is refused unless ``allow_insecure_http``.  Credentials never
  appear in a URL, an error message or a log line.
"""

from __future__ import annotations

import io
import math
import re
import socket
import threading
import time
from typing import Callable
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import InvalidHeader, MaxRetryError
from urllib3.util import Retry

from .base import SourceError
from .fields import loads

USER_AGENT = "transferlab-vuln (+https://github.com/transferlab)"
MAX_REDIRECTS = 10
CHUNK = 64 * 1024
_SECRET_PARAM = re.compile(r"key|token|secret|password|passwd|auth|sig", re.I)


class NotFound(SourceError):
    """HTTP 404: the item or endpoint does not exist (or is not visible with these credentials)."""


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``, the port filled in for http and https: what a credential is bound to."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # "https://[x" (an unclosed IPv6 host), a port out of range: a server's Link or Location
        raise SourceError(f"not a valid URL: {shown(url)!r}") from None
    scheme = parts.scheme.lower()
    return scheme, parts.hostname or "", port or {"http": 80, "https": 443}.get(scheme)


def shown(url: str) -> str:
    """``url`` fit for an error message: no user:password@, and query values that look like secrets hidden."""
    try:
        parts = urlsplit(url)
    except ValueError:  # unparsable, so nothing can be told apart: keep only what comes before any user or query
        return re.sub(r"//[^/?#]*@", "//", str(url)).split("?", 1)[0].split("#", 1)[0][:200]
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = urlencode([(k, "***" if _SECRET_PARAM.search(k) else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _excerpt(response: requests.Response) -> str:
    """What the server said, as ": text" for the end of an error message ("" when it said nothing)."""
    try:
        data = response.json()
    except ValueError:
        said = response.text[:200].strip()
    else:
        said = str(data)[:200]
        if isinstance(data, dict):
            said = next((str(data[key])[:200] for key in ("message", "errorMessages", "error", "errors")
                         if data.get(key) not in (None, True, False)), said)
    return f": {said}" if said else ""


def _rate_limited(headers) -> bool:
    """Whether a 403 is a rate limit: GitHub's primary one says so in ``X-RateLimit-Remaining``, its secondary one
    (too many requests at once) only with ``Retry-After`` while requests remain."""
    return headers.get("X-RateLimit-Remaining") == "0" or bool(headers.get("Retry-After"))


class _WaitTooLong(Exception):
    def __init__(self, seconds: float):
        self.seconds = seconds


class _Retry(Retry):
    """urllib3's Retry with three changes an unattended ingester needs: no wait is shorter than ``min_backoff``
    (``Retry-After: 0`` must not turn the budget into a burst), an unparsable ``Retry-After`` falls back to the
    backoff instead of raising, and a rate-limit 403 (GitHub's ``X-RateLimit-Remaining: 0``, or any 403 with
    ``Retry-After``: GitHub's secondary rate limit) is a retry like a 429."""

    def __init__(self, *args, pause: Callable[[float], None] = time.sleep, min_backoff: float = 1.0,
                 max_wait: float = 900.0, backoffs: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.pause, self.min_backoff, self.max_wait, self.backoffs = pause, min_backoff, max_wait, backoffs

    def new(self, **kw) -> "_Retry":
        return super().new(pause=self.pause, min_backoff=self.min_backoff, max_wait=self.max_wait,
                           backoffs=self.backoffs, **kw)

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        # Whether a 403 is GitHub's rate limit needs its headers, which only increment() is shown.
        return (status_code == 403 and self._is_method_retryable(method)) or \
            super().is_retry(method, status_code, has_retry_after)

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        if response is not None and response.status == 403 and not _rate_limited(response.headers):
            # A plain 403: with raise_on_status=False, urllib3 hands this answer back as it is, unretried.
            raise MaxRetryError(_pool, url, None)
        watchdog = getattr(_watching, "dog", None)
        if watchdog is not None and watchdog.fired:
            # The deadline cut this try: the server is stalling, and another try would stall the same way.
            raise MaxRetryError(_pool, url, error)
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def parse_retry_after(self, retry_after: str) -> float | None:
        try:
            seconds = super().parse_retry_after(retry_after)
        except (InvalidHeader, ValueError, OverflowError):  # ValueError: int() refuses over 4300 digits
            return None
        return seconds if math.isfinite(seconds) else None

    def get_retry_after(self, response) -> float | None:
        seconds = super().get_retry_after(response)
        reset = response.headers.get("X-RateLimit-Reset")
        if seconds is None and response.headers.get("X-RateLimit-Remaining") == "0" and reset:
            try:
                seconds = max(float(reset) - time.time(), 0.0) + 1.0
            except ValueError:
                return None
            return seconds if math.isfinite(seconds) else None
        return seconds

    def sleep(self, response=None) -> None:
        wait = self.get_retry_after(response) if response is not None else None
        if wait is None:
            # Counted on this object, which new() carries forward: the history cannot tell a wait the server
            # asked for from one we chose, and only ours should double.
            wait = self.backoff_factor * 2 ** self.backoffs
            self.backoffs += 1
        wait = max(wait, self.min_backoff)
        if wait > self.max_wait:
            raise _WaitTooLong(wait)
        self.pause(wait)


_watching = threading.local()  # .dog: the watchdog of the request this thread makes, where its connections find it


class _Watchdog:
    """Shuts down the sockets of one request's connections once its deadline has passed.

    http.client reads the status line and the headers line by line, bounded only by the socket timeout, which is
    per recv: a server sending a header byte every few seconds holds a request open for days, and neither requests
    nor urllib3 has a bound on the whole (urllib3's ``Timeout(total=)`` is per read too).  A timer thread that shuts
    the socket down makes the blocked recv return at once; the reader then sees ``fired``.  (Closing the socket
    instead would race with the reading thread over its file descriptor.)"""

    def __init__(self, seconds: float):
        self.seconds, self.fired = seconds, False
        self._lock, self._timer, self._armed, self._sockets = threading.Lock(), None, 0, []

    def arm(self) -> None:
        """A fresh deadline from now, for each try (after its wait) and each redirect hop."""
        with self._lock:
            self._disarm()
            self.fired, self._sockets = False, []
            self._timer = threading.Timer(self.seconds, self._fire, args=(self._armed,))
            self._timer.daemon = True
            self._timer.start()

    def disarm(self) -> None:
        with self._lock:
            self._disarm()

    def _disarm(self) -> None:
        self._armed += 1  # a timer already past cancel(), waiting for the lock, then finds itself stale
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def watch(self, connection) -> None:
        # The socket itself, not the connection: http.client lets go of it (connection.sock = None) as soon as the
        # headers say the body ends with the connection, while the body is still to be read from it.
        sock = getattr(connection, "sock", None)
        if sock is None:
            return  # not connected yet: connect() shows it again
        with self._lock:
            self._sockets.append(sock)
            if self.fired:  # it fired while this connection was still connecting
                _cut(sock)

    def _fire(self, armed: int) -> None:
        with self._lock:
            if armed != self._armed:
                return
            self.fired = True
            for sock in self._sockets:
                _cut(sock)


def _cut(sock: socket.socket) -> None:
    try:
        # socket.socket's own shutdown, also for a TLS socket: SSLSocket.shutdown would drop the SSL object under
        # the reading thread's feet; shutting the descriptor down is enough to wake that thread.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: nothing left to wake


def _watch(connection) -> None:
    watchdog = getattr(_watching, "dog", None)
    if watchdog is not None:
        watchdog.watch(connection)


class _Watched:
    """A urllib3 connection that shows itself to the watchdog of the request it serves: a new one once connected
    (the watchdog may have fired during the connect), a pooled one when a request reuses it."""

    def connect(self) -> None:
        super().connect()
        _watch(self)

    def request(self, *args, **kwargs):
        _watch(self)
        return super().request(*args, **kwargs)


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _Adapter(HTTPAdapter):
    """requests' adapter with urllib3 pools of watched connections (``ConnectionCls`` is urllib3's documented hook
    for the connection class of a pool, ``pool_classes_by_scheme`` the pool manager's for the pool class)."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS has pools of its own: bounded per read only
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


class _Limited(io.RawIOBase):
    """A streamed body that ends in a :class:`SourceError` past its deadline or size, as the reader reads it."""

    def __init__(self, client: "HttpClient", response: requests.Response, url: str, started: float):
        self.client, self.response, self.url, self.started, self.size = client, response, url, started, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.client._read1(self.response, self.url, self.started, self.size, stream=True, n=len(buffer))
        self.size += len(data)
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self.response.close()
        super().close()


class HttpClient:
    def __init__(self, session: requests.Session | None = None, headers: dict | None = None, max_retries: int = 5,
                 backoff: float = 1.0, min_backoff: float = 1.0, max_wait: float = 900.0, timeout: float = 60.0,
                 deadline: float = 300.0, max_bytes: int = 64 * 2**20, stream_deadline: float = 4 * 3600.0,
                 stream_max_bytes: int = 2 * 2**30, sleep: Callable[[float], None] = time.sleep,
                 secret_hint: str | None = None, allow_insecure_http: bool = False):
        """``timeout``: seconds for one read; ``deadline``: for a whole answer, from its request to its last byte
        (after any retry waits).  ``stream_*``: the same for :meth:`stream`, read while the file is ingested."""
        self.session = session or requests.Session()
        self.headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self.max_retries = max_retries
        self.max_wait, self.timeout, self.deadline, self.max_bytes = max_wait, timeout, deadline, max_bytes
        self.stream_deadline, self.stream_max_bytes = stream_deadline, stream_max_bytes
        self.sleep = sleep
        self.secret_hint = secret_hint
        self.allow_insecure_http = allow_insecure_http
        self._origin: tuple | None = None
        self._secret_headers: dict = {}
        self._auth = None
        self._woke = time.monotonic()
        retry = _Retry(total=max_retries, status_forcelist=[429, *range(500, 600)], backoff_factor=backoff,
                       allowed_methods=["GET", "HEAD", "POST"], raise_on_status=False,
                       pause=self._pause, min_backoff=min_backoff, max_wait=max_wait)
        adapter = _Adapter(max_retries=retry)
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, adapter)

    def bind_credential(self, base_url: str, headers: dict | None = None, auth=None,
                        allow_insecure_http: bool = False) -> None:
        """Send ``headers`` (a token, an API key) and ``auth`` (a requests auth, such as (user, password)) with
        requests to the origin of ``base_url`` only.  Without either, nothing is bound and nothing is checked."""
        if not headers and not auth:
            return
        bound = origin(base_url)
        if bound[0] != "https" and not (allow_insecure_http or self.allow_insecure_http):
            raise SourceError(f"refusing to send a credential over plain {bound[0]}:// to {shown(base_url)}",
                              hint="use the https:// address, or pass --allow-insecure-http if this network is "
                                   "trusted (the credential then travels unencrypted)")
        self._origin, self._secret_headers, self._auth = bound, dict(headers or {}), auth

    def get(self, url: str, params: dict | None = None, etag: str | None = None,
            stream: bool = False) -> requests.Response:
        """The response to a GET (200, or 304 when ``etag`` still matches); anything else raises or is retried."""
        return self.request("GET", url, params=params, etag=etag, stream=stream)

    def request(self, method: str, url: str, params: dict | None = None, body=None, etag: str | None = None,
                stream: bool = False) -> requests.Response:
        """Any request (``body``: JSON to send) with the retries, waits, limits and errors described above.
        With ``stream``, the body is left unread: :meth:`stream` reads it under the stream limits."""
        watchdog, outer = _Watchdog(self.deadline), getattr(_watching, "dog", None)
        _watching.dog = watchdog
        try:
            return self._answer(method, url, params, body, etag, stream)
        finally:
            watchdog.disarm()  # a streamed body has its own deadline, checked as it is read
            _watching.dog = outer

    def _answer(self, method: str, url: str, params, body, etag, stream: bool) -> requests.Response:
        response = self._send(method, url, params, body, etag)
        started, where = self._woke, shown(response.url or url)
        status = response.status_code
        if status in (200, 304):
            if not stream:
                self._read_body(response, where, started)
            return response
        self._read_body(response, where, started)  # the excerpt for the error, under the same limits
        tries = len(response.raw.retries.history) + 1 if getattr(response.raw, "retries", None) else 1
        if status == 429 or (status == 403 and _rate_limited(response.headers)):
            raise SourceError(f"HTTP {status} rate limited after {tries} tries{_excerpt(response)}", where=where,
                              hint="rerun later: ingestion resumes where it stopped")
        if status >= 500:
            raise SourceError(f"HTTP {status} after {tries} tries{_excerpt(response)}", where=where)
        if status == 404:
            raise NotFound(f"HTTP 404 not found{_excerpt(response)}", where=where)
        if status == 403 and "rate limit" in response.text.lower():
            raise SourceError(f"HTTP 403 rate limited{_excerpt(response)}", where=where,
                              hint="rerun later: ingestion resumes where it stopped")
        if status in (401, 403):
            raise SourceError(f"HTTP {status} {'credentials refused' if status == 401 else 'forbidden'}"
                              f"{_excerpt(response)}", where=where, hint=self.secret_hint)
        if 300 <= status < 400:
            raise SourceError(f"HTTP {status}: redirected more than {MAX_REDIRECTS} times, or nowhere", where=where)
        raise SourceError(f"HTTP {status}{_excerpt(response)}", where=where)

    def _send(self, method: str, url: str, params, body, etag) -> requests.Response:
        """The final answer after retries and redirects.  Redirects are followed here, not by requests, because
        requests keeps custom headers (an API key) and session auth on a redirect to another host: each hop
        decides afresh whether it goes to the credential's origin."""
        headers = {**self.headers, **({"If-None-Match": etag} if etag else {})}
        watchdog = _watching.dog
        for _ in range(MAX_REDIRECTS + 1):
            mine = self._origin is not None and origin(url) == self._origin
            self._woke = time.monotonic()
            watchdog.arm()
            try:
                # A connect is one system call, so its timeout bounds it whole; the watchdog cannot cut a socket
                # that is not there yet.
                response = self.session.request(method, url, params=params, json=body, stream=True,
                                                headers={**headers, **(self._secret_headers if mine else {})},
                                                auth=self._auth if mine else None, allow_redirects=False,
                                                timeout=(min(self.timeout, self.deadline), self.timeout))
            except _WaitTooLong as wait:
                raise SourceError(f"rate limited for another {wait.seconds:.0f} s (over the {self.max_wait:.0f} s "
                                  "we wait)", where=shown(url), hint="rerun later: ingestion resumes where it "
                                                                      "stopped") from None
            except (requests.ConnectionError, requests.Timeout) as err:
                if watchdog.fired:
                    raise self._too_slow(self.deadline, shown(url), "no answer") from None
                raise SourceError(f"no answer after {self.max_retries + 1} tries: {type(err).__name__}",
                                  where=shown(url)) from None
            except (requests.RequestException, ValueError) as err:  # a URL requests cannot ask (ftp:, javascript:)
                raise SourceError(f"cannot request it or follow its redirect: {type(err).__name__}",
                                  where=shown(url), hint="only http:// and https:// URLs are followed") from None
            if watchdog.fired:  # http.client takes a cut in the headers for their end
                response.close()
                raise self._too_slow(self.deadline, shown(url), "headers incomplete")
            location = response.headers.get("Location")
            if not response.is_redirect or not location:
                return response
            response.close()
            try:
                url, params = urljoin(response.url, location), None
            except ValueError:  # "http://[::1": urlsplit refuses it
                raise SourceError(f"redirected to something that is not a URL: {shown(location)!r}",
                                  where=shown(response.url)) from None
            if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                method, body = "GET", None  # what browsers and requests do
        return response

    def _read1(self, response, where: str, started: float, size: int, stream: bool, n: int = CHUNK) -> bytes:
        """One read of at most ``n`` bytes; ``size`` bytes came before.  read1 returns what one receive brought,
        so a server dripping bytes meets the deadline between reads instead of inside a read of ``n``."""
        deadline, limit = (self.stream_deadline, self.stream_max_bytes) if stream else (self.deadline, self.max_bytes)
        watchdog = None if stream else getattr(_watching, "dog", None)  # a stream's reads are bounded between them
        if time.monotonic() - started > deadline:
            response.close()
            raise self._too_slow(deadline, where, f"{size} bytes read")
        try:
            data = response.raw.read1(n, decode_content=not stream)
        except Exception as err:  # noqa: BLE001 - urllib3 and zlib raise many kinds for a broken body
            response.close()
            if watchdog is not None and watchdog.fired:
                raise self._too_slow(deadline, where, f"{size} bytes read") from None
            raise SourceError(f"the answer broke off after {size} bytes: {type(err).__name__}", where=where) from None
        if watchdog is not None and watchdog.fired:  # the cut reads as the end of a body without a length
            response.close()
            raise self._too_slow(deadline, where, f"{size + len(data)} bytes read")
        if size + len(data) > limit:
            response.close()
            raise SourceError(f"the answer is larger than {limit} bytes", where=where,
                              hint="raise the client's max_bytes if this source is trusted to send that much")
        return data

    @staticmethod
    def _too_slow(deadline: float, where: str, how_far: str) -> SourceError:
        return SourceError(f"no complete answer within the {deadline:g} s deadline ({how_far})", where=where,
                           hint="the server is too slow or stalling; rerun later")

    def _read_body(self, response: requests.Response, where: str, started: float) -> None:
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.max_bytes:  # compressed or not, it will be no smaller
            response.close()
            raise SourceError(f"the answer is larger than {self.max_bytes} bytes ({length} announced)", where=where,
                              hint="raise the client's max_bytes if this source is trusted to send that much")
        chunks, size = [], 0
        while chunk := self._read1(response, where, started, size, stream=False):
            chunks.append(chunk)
            size += len(chunk)
        # requests' own reading has no deadline or cap; what it would have read is set where it keeps it.
        response._content, response._content_consumed = b"".join(chunks), True
        response.close()

    def json(self, url: str, params: dict | None = None, method: str = "GET", body=None):
        response = self.request(method, url, params=params, body=body)
        try:
            return loads(response.content)
        except (ValueError, RecursionError):
            raise SourceError(f"the answer is not JSON: {response.text[:120]!r}", where=shown(url)) from None

    def stream(self, url: str) -> io.BufferedReader:
        """The raw (still compressed) body as a file-like object, for large files such as GH Archive hours;
        reading it past ``stream_deadline`` or ``stream_max_bytes`` raises :class:`SourceError`."""
        response = self.get(url, stream=True)
        return io.BufferedReader(_Limited(self, response, shown(response.url or url), self._woke), CHUNK)

    def _pause(self, seconds: float) -> None:
        watchdog = getattr(_watching, "dog", None)
        if watchdog is not None:
            watchdog.disarm()
        self.sleep(seconds)
        self._woke = time.monotonic()  # the deadline is for the answer, not for the waits before it
        if watchdog is not None:
            watchdog.arm()
