"""The explorer's web server: the standard library's ThreadingHTTPServer, no framework.

    GET  /           the page (its first walk: the config's default feed)
    POST /api/run    body {"feed": {"x": -1, "z": 4}} -> the walk as JSON (200), or
                     {"error": "..."} (400) for a feed that does not fit the net
It binds to 127.0.0.1 unless told another host: the page runs whatever feed it is sent.

Bound to this machine only (a loopback address or localhost), it answers only requests
addressed to localhost or a loopback address, on any port: a web page the user visits could
otherwise reach it through a name of its own that it makes resolve to 127.0.0.1 (DNS
rebinding) and read the page, which holds the net, its data and its weights' outputs. A POST must be JSON (a cross-site page can
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


def local_name(host_header: str) -> bool:
    """Whether a request's Host header names this machine: localhost or a loopback address, on
    any port (an SSH tunnel or an editor's port forwarding reaches the explorer as
    localhost:9000). A page that rebinds its own name to 127.0.0.1 still sends its own name."""
    name = host_header.strip().lower()
    if name.startswith("["):                          # [::1] or [::1]:8000
        name = name[1:name.find("]")] if "]" in name else name
    elif name.count(":") == 1:                        # 127.0.0.1:8000, localhost:8000
        name = name.split(":")[0]
    return bool(name) and is_loopback(name)


def make_server(explorer: Explorer, host: str = "127.0.0.1", port: int = 0
                ) -> ThreadingHTTPServer:
    """A server for `explorer` on host:port (port 0: any free port; `server.server_address`
    says which). Call `serve_forever()` on it, and `shutdown()` from another thread to stop."""
    handler = type("Handler", (ExplorerHandler,), {
        "explorer": explorer, "page": explorer.page().encode("utf-8"),
        "guarded": is_loopback(host)})
    return ThreadingHTTPServer((host, port), handler)


class ExplorerHandler(BaseHTTPRequestHandler):
    """Answers the page and the API for `explorer` (make_server sets the class attributes)."""
    explorer: Explorer
    page: bytes                 # the page, made once
    guarded: bool               # bound to this machine only: check Host and Origin
    timeout = TIMEOUT

    def do_GET(self) -> None:
        refusal = self._refusal()
        if refusal:
            self._json(*refusal)
        elif self.path.split("?")[0] in ("/", "/index.html"):
            self._send(HTTPStatus.OK, self.page, "text/html; charset=utf-8")
        else:
            self._json(HTTPStatus.NOT_FOUND, f"no such page: {self.path[:80]}")

    def do_POST(self) -> None:
        refusal = self._refusal() or self._post_refusal()
        if refusal:
            self._json(*refusal)
            return
        try:
            walk = self.explorer.run(parse_feed(self.rfile.read(self._length())))
        except FeedError as err:
            self._json(HTTPStatus.BAD_REQUEST, str(err))
            return
        self._json(HTTPStatus.OK, walk)

    def _refusal(self) -> tuple[HTTPStatus, str] | None:
        """Why a request addressed to another name is not answered (see the module
        docstring), or None."""
        host = self._host()
        if not self.guarded or local_name(host):
            return None
        named = f"not {host[:80]}" if host else "and this one names no Host"
        return HTTPStatus.FORBIDDEN, (
            f"this explorer answers only requests addressed to localhost or a loopback address "
            f"such as 127.0.0.1, {named}; to reach it under another name, start it on that "
            "name's address (explore.py --host)")

    def _post_refusal(self) -> tuple[HTTPStatus, str] | None:
        """Why a POST is not run: another path, a body too long, not JSON, or sent by
        another page; or None."""
        if self.path.split("?")[0] != "/api/run":
            return HTTPStatus.NOT_FOUND, f"no such API: {self.path[:80]}"
        length = self._length()
        if not 0 <= length <= MAX_BODY:
            return (HTTPStatus.REQUEST_ENTITY_TOO_LARGE if length > MAX_BODY else
                    HTTPStatus.BAD_REQUEST,
                    f"the body must be at most {MAX_BODY} bytes of JSON")
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind != "application/json":
            return (HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                    "the body must be sent as Content-Type: application/json")
        origin = self.headers.get("Origin")
        if self.guarded and origin is not None and origin.lower() != f"http://{self._host()}":
            return HTTPStatus.FORBIDDEN, f"a request from another page ({origin[:80]}) is not run"
        return None

    def _host(self) -> str:
        return (self.headers.get("Host") or "").strip().lower()

    def _length(self) -> int:
        try:
            return int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return -1

    def _json(self, status: HTTPStatus, payload: Any) -> None:
        """`payload` as JSON; a string is an error, sent as {"error": ...} on a connection
        then closed (its body, if any, is left unread)."""
        if isinstance(payload, str):
            payload = {"error": payload}
            self.close_connection = True
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
