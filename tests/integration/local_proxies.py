"""A small loopback proxy in front of the real test node, for what that node cannot do by itself.

``ThrottlingProxy`` answers ``429 Too Many Requests`` to ``_bulk`` requests while told to (the write
queue size of a running node is a static setting). Everything else reaches the real node unchanged:
it stands in front of OpenSearch, never in its place. (Secured clusters are tested against the real
security plugin: the ``secure_cluster`` fixture in tests/conftest.py.)
"""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
              "proxy-authenticate", "host", "authorization"}


class _Forwarding(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    proxy: "_Proxy"

    def log_message(self, format, *args):  # quiet: pytest shows what matters
        pass

    def _handle(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        refusal = self.proxy.refuse(self, body)
        if refusal is not None:
            status, payload, extra = refusal
            self._reply(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **extra})
            return
        upstream = http.client.HTTPConnection(self.proxy.upstream.hostname, self.proxy.upstream.port, timeout=120)
        try:
            headers = {key: value for key, value in self.headers.items() if key.lower() not in HOP_BY_HOP}
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
            kept = {key: value for key, value in response.getheaders()
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-length"}
            self._reply(response.status, payload, kept)
        finally:
            upstream.close()

    def _reply(self, status: int, payload: bytes, headers: dict):
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


class _Proxy:
    """A threaded loopback HTTP server forwarding to ``upstream``; subclasses say what to refuse."""

    scheme = "http"

    def __init__(self, upstream_url: str):
        self.upstream = urlsplit(upstream_url)
        handler = type("Handler", (_Forwarding,), {"proxy": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # a refused handshake is the test's business
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.server.serve_forever, name=type(self).__name__, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}"

    def refuse(self, request: _Forwarding, body: bytes):
        """None to forward the request; else ``(status, json payload, extra headers)`` to answer it here."""
        return None

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class ThrottlingProxy(_Proxy):
    """Answers ``_bulk`` with 429 (the way a full write queue does) for the next ``throttle_next`` bulk
    requests, or for all of them while ``always`` is set; counts what it refused and forwarded."""

    def __init__(self, upstream_url: str, throttle_next: int = 0, always: bool = False):
        super().__init__(upstream_url)
        self.throttle_next, self.always = throttle_next, always
        self.throttled = 0
        self.bulk_forwarded = 0

    def refuse(self, request: _Forwarding, body: bytes):
        if not request.path.split("?")[0].endswith("/_bulk"):
            return None
        with self.lock:
            if self.always or self.throttle_next > 0:
                self.throttle_next = max(0, self.throttle_next - 1)
                self.throttled += 1
                return 429, {"error": {"type": "rejected_execution_exception", "reason": "rejected execution of "
                                       "bulk (queue capacity 1)"}, "status": 429}, {}
            self.bulk_forwarded += 1
        return None
