"""The explorer's web server: the standard library's ThreadingHTTPServer, no framework.

    GET  /           the page (its first walk: the config's default feed)
    POST /api/run    body {"feed": {"x": -1, "z": 4}} -> the walk as JSON (200), or
                     {"error": "..."} (400) for a feed that does not fit the net
It binds to 127.0.0.1 unless told another host: the page runs whatever feed it is sent.

Bound to this machine only (a loopback address or localhost), it answers only requests
addressed to it by that name: a web page the user visits could otherwise reach it through a
name of its own that it makes resolve to 127.0.0.1 (DNS rebinding) and read the page, which
holds the net, its data and its weights' outputs. A POST must be JSON (a cross-site page can
send plain text without asking, but not JSON), and one that names where it comes from (Origin)
must come from the page itself. Bound to another address, as --host asks, any name is taken.
"""
from __future__ import annotations

import ipaddress
import json
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .explorer import Explorer, FeedError, parse_feed

MAX_BODY = 1 << 20      # bytes of a POST body
TIMEOUT = 30            # seconds a connection may keep the server waiting for its request


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or a name given to bind) is this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def local_names(port: int) -> frozenset[str]:
    """The Host headers a browser sends for this machine on `port` (lower case)."""
    names = ("127.0.0.1", "localhost", "[::1]")
    return frozenset(f"{name}:{port}" for name in names) | (
        frozenset(names) if port == 80 else frozenset())


def make_server(explorer: Explorer, host: str = "127.0.0.1", port: int = 0
                ) -> ThreadingHTTPServer:
    """A server for `explorer` on host:port (port 0: any free port; `server.server_address`
    says which). Call `serve_forever()` on it, and `shutdown()` from another thread to stop."""
    page = explorer.page().encode("utf-8")
    guarded = is_loopback(host)

    class Handler(BaseHTTPRequestHandler):
        timeout = TIMEOUT

        def do_GET(self) -> None:
            if not self._addressed_here():
                return
            if self.path.split("?")[0] in ("/", "/index.html"):
                self._send(HTTPStatus.OK, page, "text/html; charset=utf-8")
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {self.path[:80]}"})

        def do_POST(self) -> None:
            if not self._addressed_here():
                return
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
            kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if kind != "application/json":
                self._json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                           {"error": "the body must be sent as Content-Type: application/json"})
                self.close_connection = True
                return
            origin = self.headers.get("Origin")
            if guarded and origin is not None and origin.lower() != f"http://{self._host()}":
                self._json(HTTPStatus.FORBIDDEN, {"error": f"a request from another page "
                                                           f"({origin[:80]}) is not run"})
                self.close_connection = True
                return
            try:
                walk = explorer.run(parse_feed(self.rfile.read(length)))
            except FeedError as err:
                self._json(HTTPStatus.BAD_REQUEST, {"error": str(err)})
                return
            self._json(HTTPStatus.OK, walk)

        def _host(self) -> str:
            return (self.headers.get("Host") or "").strip().lower()

        def _addressed_here(self) -> bool:
            """Whether the request names this machine as its Host; else answer 403 (see the
            module docstring)."""
            if not guarded or self._host() in local_names(self.server.server_address[1]):
                return True
            self._json(HTTPStatus.FORBIDDEN, {
                "error": f"this explorer answers only requests addressed to 127.0.0.1 or "
                         f"localhost, not {self._host()[:80] or 'no Host'}; to reach it under "
                         "another name, start it on that address (explore.py --host)"})
            self.close_connection = True
            return False

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
