"""push_to_hub against a local HTTP server that stands in for the Hub (tests/hub_server.py)."""

import json
import re

import pytest

from conftest import make_args, tiny_marian
from hf_l2mt.core.anchor import ANCHOR_FILE
from hf_l2mt.apps.weights.average import UNAVERAGED_DIR
from hf_l2mt.apps.publish.hub import push_to_hub
from hf_l2mt.evaluation.metrics import score_translations
from hf_l2mt.apps.publish.model_card import build_model_card, write_model_card
from hub_server import COMMIT_OID, TOKEN, fake_hub  # noqa: F401 (fake_hub is a fixture)


@pytest.fixture
def finished_run(tmp_path):
    """An output directory as a finished run leaves it: model, card, checkpoints, anchor, pickled arguments, and
    the model of the last update that a run averaging its checkpoints keeps in ``last/``."""
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
    tiny_marian(seed=1).save_pretrained(run / UNAVERAGED_DIR)
    tiny_marian(seed=2).save_pretrained(run / "average-last-2")  # hf-l2mt average's default output: a model of its own
    return run, scores


def test_push_uploads_model_and_card_but_no_checkpoint_anchor_last_update_or_token(fake_hub, finished_run):
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
