"""No code from a checkpoint runs unless asked, nothing is unpickled, no Hub token or local path leaks."""

import ast
import json
import logging
import os
import pickle
import re
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig

import hf_l2mt
from conftest import make_args, tiny_marian
from hf_l2mt.core import anchor as anchor_io
from hf_l2mt.apps.publish.model_card import build_model_card, write_model_card
from hf_l2mt.apps.recipes.runner import parse_arguments, run
from hf_l2mt.apps.recipes import en_de, load_recipe, recipe_names
from hf_l2mt.evaluation.translate import load_translation_model
from hub_server import TOKEN, fake_hub  # noqa: F401 (fake_hub is a fixture)
from tiny_checkpoints import save_checkpoint, sentence_pairs, write_tsv

PACKAGE = os.path.dirname(hf_l2mt.__file__)
REQUIRED = ["--model_name_or_path", "m", "--src_lang", "en", "--tgt_lang", "de", "--train_source", "t.tsv",
            "--eval_holdout", "2", "--output_dir", "out"]


class WritesMarker:
    """Unpickling this writes a file: what a malicious pickle could do instead."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def remote_code_checkpoint(tmp_path):
    """A checkpoint (with a usable tokenizer) whose config points at Python code that writes ``ran.txt``."""
    folder = save_checkpoint(tmp_path / "remote-code-model", "marian")
    marker = tmp_path / "ran.txt"
    for module, cls, base in (("configuration_custom", "CustomConfig", "MarianConfig"),
                              ("modeling_custom", "CustomModel", "MarianMTModel")):
        with open(os.path.join(folder, f"{module}.py"), "w", encoding="utf-8") as f:
            f.write(f"open({str(marker)!r}, 'w').close()\nfrom transformers import {base}\n\n\n"
                    f"class {cls}({base}):\n    model_type = 'custom-mt'\n")
    config_path = Path(folder) / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["model_type"] = "custom-mt"
    config["auto_map"] = {
        "AutoConfig": "configuration_custom.CustomConfig", "AutoModelForSeq2SeqLM": "modeling_custom.CustomModel",
    }
    config_path.write_text(json.dumps(config), encoding="utf-8")
    return folder, marker


def test_trust_remote_code_is_off_by_default_in_every_recipe():
    for name in recipe_names():
        recipe, _ = parse_arguments(load_recipe(name).CONFIG, REQUIRED)
        assert recipe.trust_remote_code is False, name
    recipe, _ = parse_arguments({}, [*REQUIRED, "--trust_remote_code"])
    assert recipe.trust_remote_code is True


def test_code_shipped_with_a_checkpoint_never_runs_unless_asked(remote_code_checkpoint, tmp_path):
    folder, marker = remote_code_checkpoint
    with pytest.raises(ValueError, match="trust_remote_code"):
        load_translation_model(str(folder))
    argv = [*REQUIRED, "--model_name_or_path", str(folder), "--output_dir", str(tmp_path / "out"), "--use_cpu"]
    with pytest.raises(ValueError, match="trust_remote_code"):
        run({}, argv)
    assert not marker.exists()
    # The marker works: asking for the code runs it.
    AutoConfig.from_pretrained(folder, trust_remote_code=True)
    assert marker.exists()


def torch_load_calls(path):
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("load", "loads"):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id in ("torch", "pickle", "dill", "joblib"):
                yield owner.id, node


def test_package_never_unpickles_without_weights_only():
    offenders = []
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                for owner, call in torch_load_calls(path):
                    safe = owner == "torch" and any(
                        k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                        for k in call.keywords
                    )
                    if not safe:
                        offenders.append(f"{os.path.relpath(path, PACKAGE)}:{call.lineno} {owner}.{call.func.attr}")
    assert offenders == []


def test_anchor_is_read_with_safetensors_and_a_pickle_in_its_place_is_refused(tmp_path, monkeypatch):
    model = tiny_marian()
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    marker = str(tmp_path / "unpickled.txt")
    path = tmp_path / anchor_io.ANCHOR_FILE
    path.write_bytes(pickle.dumps({"model.shared.weight": WritesMarker(marker)}))
    with pytest.raises(anchor_io.AnchorError, match="not safetensors"):
        anchor_io.load(str(tmp_path), named, "float32")
    assert not os.path.exists(marker)
    with open(path, "rb") as f:  # the file is harmful to whoever unpickles it
        pickle.load(f)
    assert os.path.exists(marker)

    anchor_io.save(anchor_io.snapshot(named, "float32"), str(tmp_path))

    def no_pickle(*args, **kwargs):
        raise AssertionError("the anchor was read with torch.load")

    monkeypatch.setattr(torch, "load", no_pickle)
    monkeypatch.setattr(pickle, "load", no_pickle)
    loaded = anchor_io.load(str(tmp_path), named, "float32")
    assert all(torch.equal(loaded[n], p) for n, p in named.items())


def test_hub_token_is_never_printed_logged_or_written(fake_hub, tmp_path, capfd, caplog, monkeypatch):
    marian_dir = save_checkpoint(tmp_path / "opus-mt-tiny", "marian")
    train = write_tsv(tmp_path / "train.tsv", sentence_pairs(24, seed=0))
    general = write_tsv(tmp_path / "general.tsv", sentence_pairs(4, seed=1))
    out = tmp_path / "opus-mt-en-de-tiny"
    argv = [
        "--model_name_or_path", marian_dir, "--train_source", train, "--eval_sources", f"general={general}",
        "--max_steps", "2", "--per_device_train_batch_size", "4", "--save_strategy", "steps", "--save_steps", "1",
        "--eval_steps", "2", "--logging_steps", "1", "--generation_num_beams", "1", "--generation_max_length", "8", "--max_source_length", "16", "--max_target_length", "16",
        "--use_cpu", "--dataloader_num_workers", "0", "--output_dir", str(out), "--report_to", "none",
        "--push_to_hub", "--hub_model_id", "someone/opus-mt-en-de-tiny", "--hub_token", TOKEN,
    ]
    monkeypatch.setattr(sys, "argv", ["recipes/en_de.py", *argv])
    with caplog.at_level(logging.DEBUG):
        en_de.main(argv)

    assert fake_hub.committed, "nothing was pushed"
    written = [os.path.join(folder, name) for folder, _, files in os.walk(out) for name in files]
    assert any(path.endswith("training_args.bin") for path in written)
    for path in written:
        with open(path, "rb") as f:
            assert TOKEN.encode() not in f.read(), os.path.relpath(path, out)
    captured = capfd.readouterr()
    assert TOKEN not in captured.out and TOKEN not in captured.err
    assert TOKEN not in caplog.text
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "--hub_token ***" in card


ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])(?:~|[A-Za-z]:)?[/\\][\w.-]+[/\\]")


def test_model_card_names_local_paths_by_their_last_component_only(tmp_path):
    base = save_checkpoint(tmp_path / "models" / "opus-mt-tiny", "marian")
    args = make_args(tmp_path / "runs" / "opus-mt-en-de-medical", l2sp_lambda=0.5)
    data = str(tmp_path / "data" / "medical.tsv")
    command = f"python recipes/en_de.py --model_name_or_path {base} --train_source {data} --output_dir {args.output_dir}"
    card = build_model_card(base_model=base, src_lang="en", tgt_lang="de", training_args=args, scores={},
                            datasets=[data], command=command)
    os.makedirs(args.output_dir)
    text = Path(write_model_card(args.output_dir, card)).read_text(encoding="utf-8")
    assert str(tmp_path) not in text and os.path.expanduser("~") + os.sep not in text
    assert [m.group(0) for m in ABSOLUTE_PATH.finditer(text)] == []
    assert "opus-mt-tiny" in text and "medical.tsv" in text
