"""The little of the Kubernetes API server that a node agent's pod uses: one Node, GET and
``application/merge-patch+json`` PATCH, over HTTPS with a bearer token, so the DaemonSet's
``node-labels`` initContainer runs with the in-cluster config kubelet gives it (token, CA,
``KUBERNETES_SERVICE_HOST``). A stand-in for the cluster this machine does not have.

The certificate is made by the ``openssl`` command (self-signed, IP SAN 127.0.0.1).
"""

from __future__ import annotations

import json
import secrets
import ssl
import subprocess
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386, as the API server applies ``application/merge-patch+json``."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_patch(target[key], value)
        else:
            target[key] = value
    return target


def self_signed(directory: Path) -> tuple[Path, Path]:
    """(cert, key) for 127.0.0.1, made by openssl."""
    cert, key = directory / "apiserver.crt", directory / "apiserver.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=kube-apiserver", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


class ApiServerSim(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, node_name: str, directory: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.token = secrets.token_hex(16)
        self.node: dict[str, Any] = {"apiVersion": "v1", "kind": "Node",
                                     "metadata": {"name": node_name, "labels": {},
                                                  "annotations": {}}}
        self.requests: list[tuple[str, str]] = []
        self.cert, key = self_signed(directory)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True,
                                        name="apiserver-sim")

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> ApiServerSim:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: ApiServerSim

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.requests.append((method, self.path))
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        # auth schemes are case-insensitive (RFC 7235); the in-cluster client sends "bearer"
        if scheme.lower() != "bearer" or token != self.server.token:
            self._reply(HTTPStatus.UNAUTHORIZED, {"kind": "Status", "code": 401})
            return
        name = self.server.node["metadata"]["name"]
        if self.path.split("?")[0] != f"/api/v1/nodes/{name}":
            self._reply(HTTPStatus.NOT_FOUND, {"kind": "Status", "code": 404, "reason": "NotFound"})
            return
        if method == "PATCH":
            if self.headers.get("Content-Type") != "application/merge-patch+json":
                self._reply(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"kind": "Status", "code": 415})
                return
            merge_patch(self.server.node, body or {})
        self._reply(HTTPStatus.OK, self.server.node)

    def do_GET(self) -> None:
        self._route("GET")

    def do_PATCH(self) -> None:
        self._route("PATCH")
