"""A local HTTP server that stands in for the Hugging Face Hub (HF_ENDPOINT); nothing leaves 127.0.0.1.

The server answers the endpoints huggingface_hub 2.4 calls for ``create_repo`` + ``upload_folder``:
POST /api/repos/create, /api/validate-yaml, /api/models/{repo}/preupload/{rev} (every file "regular",
so no LFS or Xet upload) and /api/models/{repo}/commit/{rev} (NDJSON, base64 file contents).

It also serves the repositories published on it with ``publish(server, repo_id, files, repo_type)``
as huggingface_hub and datasets download them: GET/HEAD ``/{repo}/resolve/{rev}/{path}`` (and
``/datasets/{repo}/resolve/...``) with ``X-Repo-Commit``, ``ETag`` and ``Content-Length``, byte ranges;
``/api/{models,datasets}/{repo}[/revision/{rev}]`` (the repository's info and file list);
``/api/{models,datasets}/{repo}/tree/{rev}[/{path}]``; ``/api/agent-harnesses`` (empty); POST ``/api/{models,datasets}/{repo}/paths-info/{rev}``.
A model published with ``publish(..., moved_from="t5-small")`` is also found under its old id without a
namespace, as the Hub finds ``google-t5/t5-small`` at ``t5-small``: ``/{old}/resolve/...`` answers 307 to the
same file of the new id, and ``/api/models/{old}...`` to the same request about the new id.
A request for anything else is answered 404 and kept in ``server.unexpected``, which the fixture
asserts empty. Use the ``fake_hub`` fixture: ``from hub_server import fake_hub``.
"""

import base64
import hashlib
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import huggingface_hub
import pytest
from huggingface_hub import constants

TOKEN = "hf_FakeTokenForTestsOnly0123456789"
COMMIT_OID = "0123456789abcdef0123456789abcdef01234567"
REPO = r"(?P<repo>[^/]+/[^/]+)"
REVISION = rf"(?P<rev>main|{COMMIT_OID})"
API = rf"/api/(?P<kind>models|datasets)/{REPO}"


def publish(server, repo_id: str, files: dict[str, bytes], repo_type: str = "model", moved_from: str | None = None):
    """Serve ``files`` (path in the repository -> content) as the repository ``repo_id`` at ``COMMIT_OID``;
    ``moved_from``, a model's former id, redirects to it."""
    server.repos[(repo_type, repo_id)] = dict(files)
    if moved_from is not None:
        server.moved[moved_from] = repo_id


def folder_files(folder) -> dict[str, bytes]:
    """Every file under ``folder`` by its path relative to it, as ``publish`` takes them."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file()}


def _oid(content: bytes) -> str:
    return hashlib.sha1(content).hexdigest()


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
        elif match := re.fullmatch(rf"{API}/paths-info/{REVISION}", self.path):
            if (files := self._repo(match)) is not None:
                wanted = [path.strip("/") for path in parse_qs(body.decode()).get("paths", [])]
                self._answer([entry for entry in self._entries(files, "", True) if entry["path"] in wanted])
        else:
            self._unexpected()

    def do_HEAD(self):
        self._record("HEAD", b"")
        if not self._redirect_moved():
            self._download(head=True)

    def do_GET(self):
        self._record("GET", b"")
        path = urlsplit(self.path).path
        if self._redirect_moved():
            return
        if path == "/api/agent-harnesses":  # the registry huggingface_hub 2.x reads for its user agent
            self._answer({"standardEnvVars": [], "harnesses": {}})
        elif match := re.fullmatch(rf"{API}(?:/revision/{REVISION})?", path):
            if (files := self._repo(match)) is not None:
                siblings = [{"rfilename": name, "size": len(content)} for name, content in files.items()]
                self._answer({"id": match["repo"], "sha": COMMIT_OID, "private": False, "disabled": False,
                              "gated": False, "siblings": siblings, "tags": [], "downloads": 0, "likes": 0})
        elif match := re.fullmatch(rf"{API}/tree/{REVISION}(?:/(?P<folder>.*))?", path):
            if (files := self._repo(match)) is not None:
                recursive = parse_qs(urlsplit(self.path).query).get("recursive", ["false"])[0] in ("true", "True")
                self._answer(self._entries(files, unquote(match["folder"] or "").strip("/"), recursive))
        else:
            self._download(head=False)

    def _download(self, head: bool):
        """``/{repo}/resolve/{rev}/{path}`` (``/datasets/`` before it for a dataset): the file, or its headers."""
        match = re.fullmatch(rf"/(?P<datasets>datasets/)?{REPO}/resolve/{REVISION}/(?P<path>.+)", urlsplit(self.path).path)
        if not match:
            return self._unexpected()
        files = self.server.repos.get(("dataset" if match["datasets"] else "model", match["repo"]))
        path = unquote(match["path"])
        if files is None or path not in files:
            # huggingface_hub tells "no such file" (transformers then tries the next optional file) from
            # "no such repository" by this header.
            code = "RepoNotFound" if files is None else "EntryNotFound"
            return self._answer({"error": f"{code}: {self.path}"}, status=404, headers={"X-Error-Code": code})
        content = files[path]
        status, headers = 200, {"X-Repo-Commit": COMMIT_OID, "ETag": f'"{_oid(content)}"'}
        if byte_range := re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", "")):
            start, end = int(byte_range[1]), int(byte_range[2] or len(content) - 1)
            status, content = 206, content[start:end + 1]
            headers["Content-Range"] = f"bytes {start}-{start + len(content) - 1}/{len(files[path])}"
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(content))}.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(content)

    def _redirect_moved(self) -> bool:
        """A 307 to the new id for a request naming a moved model's old id (``/api/models/{old}...`` or
        ``/{old}/resolve/...``), with a relative Location as the Hub sends; whether it answered."""
        moved = re.fullmatch(r"/(?P<api>api/models/)?(?P<old>[^/?]+)(?P<rest>[/?].*)?", self.path)
        if not moved or moved["old"] not in self.server.moved:
            return False
        rest = moved["rest"] or ""
        if not moved["api"] and not rest.startswith("/resolve/"):
            return False
        location = f"/{moved['api'] or ''}{self.server.moved[moved['old']]}{rest}"
        self._answer({}, status=307, headers={"Location": location})
        return True

    def _repo(self, match) -> dict[str, bytes] | None:
        """The files of the repository the request names; a repository not published is a 404."""
        files = self.server.repos.get((match["kind"][:-1], match["repo"]))
        if files is None:
            self._answer({"error": f"Repository not found: {match['repo']}"}, status=404,
                         headers={"X-Error-Code": "RepoNotFound"})
        return files

    @staticmethod
    def _entries(files: dict[str, bytes], folder: str, recursive: bool) -> list[dict]:
        """The tree entries under ``folder``: its files and folders, and deeper ones when ``recursive``."""
        prefix = f"{folder}/" if folder else ""
        entries = {}
        for name, content in files.items():
            if not name.startswith(prefix):
                continue
            parts = name[len(prefix):].split("/")
            for depth in range(1, len(parts) if recursive else 1):
                directory = prefix + "/".join(parts[:depth])
                entries[directory] = {"type": "directory", "oid": _oid(directory.encode()), "size": 0,
                                      "path": directory}
            if recursive or len(parts) == 1:
                entries[name] = {"type": "file", "oid": _oid(content), "size": len(content), "path": name}
            else:
                directory = prefix + parts[0]
                entries[directory] = {"type": "directory", "oid": _oid(directory.encode()), "size": 0,
                                      "path": directory}
        return list(entries.values())

    def _unexpected(self):
        self.server.unexpected.append(self.path)
        self._answer({"error": f"not served by the test server: {self.path}"}, status=404)

    def _record(self, method: str, body: bytes):
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.received.append({"method": method, "path": self.path, "headers": headers, "body": body})

    def _answer(self, payload, status: int = 200, headers: dict | None = None):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        """Silence the per-request lines http.server writes to stderr."""


@pytest.fixture
def fake_hub(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    server.received, server.committed, server.repos, server.moved, server.unexpected = [], {}, {}, {}, []
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
    assert server.unexpected == [], f"requests the stand-in Hub does not serve: {server.unexpected}"
