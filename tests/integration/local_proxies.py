"""Small loopback proxies in front of the real test node, for what that node cannot do by itself.

``TlsAuthProxy`` plays a secured cluster: https with a certificate made on the fly, a client
certificate required at the handshake, and HTTP basic auth checked on every request, then forwards
to the node. ``ThrottlingProxy`` answers ``429 Too Many Requests`` to ``_bulk`` requests while told
to (the write queue size of a running node is a static setting). Everything else reaches the real
node unchanged: these stand in front of OpenSearch, never in its place.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import ipaddress
import json
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
              "proxy-authenticate", "host", "authorization"}


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed none of these: trusting only it must fail the handshake


def make_certificates(directory: Path) -> Certificates:
    """A CA, a server certificate for 127.0.0.1 and a client certificate it signed, and an unrelated CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def issue(subject: str, key, issuer: str, issuer_key, *, ca: bool = False, extensions=()):
        builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        for extension in extensions:
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def write(path: Path, certificate=None, key=None) -> Path:
        if certificate is not None:
            path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        else:
            path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return path

    directory.mkdir(parents=True, exist_ok=True)
    ca_key, server_key, client_key, other_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(4))
    ca = issue("ner-os test CA", ca_key, "ner-os test CA", ca_key, ca=True)
    other = issue("some other CA", other_key, "some other CA", other_key, ca=True)
    server = issue("127.0.0.1", server_key, "ner-os test CA", ca_key, extensions=[
        x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])])
    client = issue("ner-os-test-client", client_key, "ner-os test CA", ca_key,
                   extensions=[x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])])
    return Certificates(ca=write(directory / "ca.pem", ca), server_cert=write(directory / "server.pem", server),
                        server_key=write(directory / "server.key", key=server_key),
                        client_cert=write(directory / "client.pem", client),
                        client_key=write(directory / "client.key", key=client_key),
                        other_ca=write(directory / "other-ca.pem", other))


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


class TlsAuthProxy(_Proxy):
    """https on loopback: the client must present a certificate signed by ``certificates.ca`` and send
    ``Authorization: Basic`` with ``username``/``password``; records the client certificates it saw."""

    scheme = "https"

    def __init__(self, upstream_url: str, certificates: Certificates, username: str, password: str):
        super().__init__(upstream_url)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificates.server_cert, certificates.server_key)
        context.load_verify_locations(certificates.ca)
        context.verify_mode = ssl.CERT_REQUIRED
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True,
                                                 do_handshake_on_connect=False)
        self.expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.client_subjects: list[str] = []
        self.refused_auth = 0

    def refuse(self, request: _Forwarding, body: bytes):
        certificate = request.connection.getpeercert()
        subject = dict(item for rdn in certificate.get("subject", ()) for item in rdn)
        with self.lock:
            self.client_subjects.append(subject.get("commonName", ""))
        if request.headers.get("Authorization") != self.expected:
            with self.lock:
                self.refused_auth += 1
            return 401, {"error": {"type": "security_exception", "reason": "authentication failed"}, "status": 401}, \
                {"WWW-Authenticate": 'Basic realm="test"'}
        return None


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
