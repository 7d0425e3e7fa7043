"""The explorer's web server: the standard library's ThreadingHTTPServer, no framework.

    GET  /           the page (its first walk: the config's default feed)
    POST /api/run    body {"feed": {"x": -1, "z": 4}} -> the walk as JSON (200), or
                     {"error": "..."} (400) for a feed that does not fit the net
It binds to 127.0.0.1 unless told another host: the page runs whatever feed it is sent.
"""
from __future__ import annotations

import json
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .explorer import Explorer, FeedError, parse_feed

MAX_BODY = 1 << 20      # bytes of a POST body


def make_server(explorer: Explorer, host: str = "127.0.0.1", port: int = 0
                ) -> ThreadingHTTPServer:
    """A server for `explorer` on host:port (port 0: any free port; `server.server_address`
    says which). Call `serve_forever()` on it, and `shutdown()` from another thread to stop."""
    page = explorer.page().encode("utf-8")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] in ("/", "/index.html"):
                self._send(HTTPStatus.OK, page, "text/html; charset=utf-8")
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {self.path[:80]}"})

        def do_POST(self) -> None:
            if self.path.split("?")[0] != "/api/run":
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such API: {self.path[:80]}"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE if length > MAX_BODY else
                           HTTPStatus.BAD_REQUEST,
                           {"error": f"the body must be at most {MAX_BODY} bytes of JSON"})
                self.close_connection = True
                return
            try:
                walk = explorer.run(parse_feed(self.rfile.read(length)))
            except FeedError as err:
                self._json(HTTPStatus.BAD_REQUEST, {"error": str(err)})
                return
            self._json(HTTPStatus.OK, walk)

        def _json(self, status: HTTPStatus, payload: Any) -> None:
            self._send(status, json.dumps(payload, allow_nan=False).encode("utf-8"),
                       "application/json")

        def _send(self, status: HTTPStatus, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:   # quiet: the script prints
            pass

    return ThreadingHTTPServer((host, port), Handler)
