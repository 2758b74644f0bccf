"""push_to_hub against a local HTTP server that stands in for the Hub (HF_ENDPOINT); nothing leaves 127.0.0.1.

The server answers the endpoints huggingface_hub 2.4 calls for ``create_repo`` + ``upload_folder``:
POST /api/repos/create, /api/validate-yaml, /api/models/{repo}/preupload/{rev} (every file "regular",
so no LFS or Xet upload) and /api/models/{repo}/commit/{rev} (NDJSON, base64 file contents).
"""

import base64
import json
import os
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import huggingface_hub
import pytest
from huggingface_hub import constants

from conftest import make_args, tiny_marian
from hf_l2mt.anchor import ANCHOR_FILE
from hf_l2mt.hub import push_to_hub
from hf_l2mt.metrics import score_translations
from hf_l2mt.model_card import build_model_card, write_model_card

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


@pytest.fixture
def finished_run(tmp_path):
    """An output directory as a finished run leaves it: model, card, checkpoints, anchor, pickled arguments."""
    run = tmp_path / "run-en-de"
    tiny_marian().save_pretrained(run)
    args = make_args(run, l2sp_lambda=0.5)
    scores = {"in_domain": score_translations(["ein Haus", "der Hund"], ["ein Haus", "die Katze"])}
    card = build_model_card(
        base_model="Helsinki-NLP/opus-mt-en-de", src_lang="en", tgt_lang="de", training_args=args, scores=scores,
        command=f"python train.py --hub_token {TOKEN} --l2sp_lambda 0.5",
    )
    write_model_card(str(run), card)
    (run / "checkpoint-3").mkdir()
    (run / "checkpoint-3" / "model.safetensors").write_bytes(b"optimizer and weights of step 3")
    (run / "checkpoint-3" / ANCHOR_FILE).write_bytes(b"anchor")
    (run / ANCHOR_FILE).write_bytes(b"anchor")
    (run / "training_args.bin").write_bytes(f"pickle with hub_token={TOKEN}".encode())
    return run, scores


def test_push_uploads_model_and_card_but_no_checkpoint_anchor_or_token(fake_hub, finished_run):
    run, scores = finished_run

    commit_url = push_to_hub(str(run), "someone/opus-mt-en-de-medical", token=TOKEN, private=True)

    assert commit_url.endswith(f"/someone/opus-mt-en-de-medical/commit/{COMMIT_OID}")
    committed = fake_hub.committed
    assert set(committed) == {"config.json", "generation_config.json", "model.safetensors", "README.md"}
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        assert committed[name] == (run / name).read_bytes(), name
    card = committed["README.md"].decode()
    assert card == (run / "README.md").read_text(encoding="utf-8")
    assert f"{scores['in_domain']['chrf']:.2f}" in card and scores["in_domain"]["signatures"]["bleu"] in card
    assert "--hub_token ***" in card

    create = next(r for r in fake_hub.received if r["path"] == "/api/repos/create")
    expected = {"name": "opus-mt-en-de-medical", "organization": "someone", "visibility": "private"}
    assert json.loads(create["body"]) == expected
    writes = [r for r in fake_hub.received if r["path"].startswith(("/api/repos/create", "/api/models/"))]
    assert len(writes) == 3  # create, preupload, commit
    assert all(r["headers"].get("authorization") == f"Bearer {TOKEN}" for r in writes)
    for request in fake_hub.received:
        other_headers = {k: v for k, v in request["headers"].items() if k != "authorization"}
        assert TOKEN not in json.dumps(other_headers) + request["path"], request["path"]
        assert TOKEN.encode() not in request["body"], request["path"]
    assert all(TOKEN.encode() not in content for content in committed.values())


def test_push_refuses_a_directory_without_a_saved_model(fake_hub, tmp_path):
    with pytest.raises(ValueError, match=f"{re.escape(repr(str(tmp_path)))} has no config.json"):
        push_to_hub(str(tmp_path), "someone/model", token=TOKEN)
    missing = tmp_path / "missing"
    with pytest.raises(ValueError, match="is not a directory"):
        push_to_hub(str(missing), "someone/model", token=TOKEN)
    assert fake_hub.received == []
