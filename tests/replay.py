"""A local HTTP server that replays recorded API payloads, with scripted failures, for the network connectors."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


class LocalServer:
    """A server on 127.0.0.1 (a free port), served from a thread for the length of a ``with`` block."""

    def _serve(self, server_class, handler) -> None:
        self.httpd = server_class(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    when: dict = field(default_factory=dict)  # query parameters that must match (all given ones)
    etag: str | None = None  # answer 304 when the request's If-None-Match equals this
    times: int | None = None  # how often this reply is given before the next one for the path; None: always


class ReplayServer(LocalServer):
    def __init__(self):
        self.routes: dict[str, list[Reply]] = {}
        self.seen: list[tuple[str, dict, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                server.seen.append((parts.path, query, {k.lower(): v for k, v in self.headers.items()}))
                reply = server._pick(parts.path, query)
                if reply is None:
                    self._send(404, b'{"message": "Not Found"}', {})
                elif reply.etag and self.headers.get("If-None-Match") == reply.etag:
                    self._send(304, b"", {"ETag": reply.etag})
                else:
                    headers = {k: v.replace("{base}", server.url) for k, v in reply.headers.items()}
                    if reply.etag:
                        headers["ETag"] = reply.etag
                    self._send(reply.status, reply.body.replace(b"{base}", server.url.encode()), headers)

            do_POST = do_GET  # noqa: N815 - replies do not depend on the method (the OSV API is POST)

            def _send(self, status, body, headers):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._serve(ThreadingHTTPServer, Handler)

    def add(self, path: str, payload=None, file: Path | None = None, **kwargs) -> "ReplayServer":
        body = file.read_bytes() if file is not None else json.dumps(payload).encode() if payload is not None else b""
        self.routes.setdefault(path, []).append(Reply(body=body, **kwargs))
        return self

    def _pick(self, path: str, query: dict) -> Reply | None:
        for reply in self.routes.get(path, []):
            if all(str(query.get(k)) == str(v) for k, v in reply.when.items()):
                if reply.times is None:
                    return reply
                if reply.times > 0:
                    reply.times -= 1
                    return reply
        return None

    def requests_to(self, path: str) -> list[tuple[dict, dict]]:
        return [(q, h) for p, q, h in self.seen if p == path]
