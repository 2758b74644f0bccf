"""A local HTTP server that stands in for the Hugging Face Hub (HF_ENDPOINT); nothing leaves 127.0.0.1.

The server answers the endpoints huggingface_hub 2.4 calls for ``create_repo`` + ``upload_folder``:
POST /api/repos/create, /api/validate-yaml, /api/models/{repo}/preupload/{rev} (every file "regular",
so no LFS or Xet upload) and /api/models/{repo}/commit/{rev} (NDJSON, base64 file contents).
Use the ``fake_hub`` fixture: ``from hub_server import fake_hub``.
"""

import base64
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import huggingface_hub
import pytest
from huggingface_hub import constants

TOKEN = "hf_FakeTokenForTestsOnly0123456789"
COMMIT_OID = "0123456789abcdef0123456789abcdef01234567"


class FakeHub(BaseHTTPRequestHandler):
    """Records every request in ``server.received`` and answers like the Hub would."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._record("POST", body)
        base = f"http://127.0.0.1:{self.server.server_port}"
        if self.path == "/api/repos/create":
            payload = json.loads(body)
            self._answer({"url": f"{base}/{payload['organization']}/{payload['name']}"})
        elif self.path == "/api/validate-yaml":
            self._answer({"errors": [], "warnings": []})
        elif match := re.fullmatch(r"/api/models/([^/]+/[^/]+)/preupload/main", self.path):
            files = json.loads(body)["files"]
            modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
            self._answer({"files": modes})
        elif match := re.fullmatch(r"/api/models/([^/]+/[^/]+)/commit/main", self.path):
            lines = [json.loads(line) for line in body.decode().splitlines()]
            for line in lines:
                if line["key"] == "file":
                    self.server.committed[line["value"]["path"]] = base64.b64decode(line["value"]["content"])
            self._answer({"commitUrl": f"{base}/{match.group(1)}/commit/{COMMIT_OID}", "commitOid": COMMIT_OID})
        else:
            self._answer({"error": f"not served by the test server: {self.path}"}, status=404)

    def do_GET(self):
        self._record("GET", b"")
        self._answer({"error": f"not served by the test server: {self.path}"}, status=404)

    def _record(self, method: str, body: bytes):
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.received.append({"method": method, "path": self.path, "headers": headers, "body": body})

    def _answer(self, payload: dict, status: int = 200):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        """Silence the per-request lines http.server writes to stderr."""


@pytest.fixture
def fake_hub(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    server.received, server.committed = [], {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    # huggingface_hub reads these variables into `constants` at import time, so both are set.
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    huggingface_hub.close_session()  # the shared HTTP client is rebuilt with the settings above
    real_connect = socket.socket.connect

    def loopback_only(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1"):
            raise OSError(f"test tried to reach {address}; only the local fake Hub is allowed")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    yield server
    huggingface_hub.close_session()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    assert not thread.is_alive()
