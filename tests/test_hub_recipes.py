"""The Hub path of the recipes as users run it: ``python recipes/en_de.py`` offline, online, and launched.

Offline (``HF_HUB_OFFLINE=1``, or ``HF_ENDPOINT`` on a closed port) and nothing cached, a recipe stops
within seconds with one line naming the flag and the fix. Online, a local stand-in Hub
(tests/hub_server.py) serves the checkpoint and the dataset under their real ids; nothing leaves 127.0.0.1.
"""

import os
import re
import socket
import subprocess
import sys
import time

import pytest

from hub_server import TOKEN, fake_hub, folder_files, publish  # noqa: F401 (fake_hub is a fixture)
from tiny_checkpoints import save_checkpoint, save_opus_mt_checkpoint, sentence_pairs, wmt16_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Generous for a loaded machine: the probe waits 3 s at most, the imports take the rest.
OFFLINE_SECONDS = 15


def closed_port() -> int:
    """A loopback port nothing listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def recipe_env(tmp_path, **variables) -> dict:
    """The environment of a recipe run: an empty HF_HOME, no proxy (the Hub is probed), and ``variables``."""
    env = {name: value for name, value in os.environ.items() if "PROXY" not in name.upper()}
    env.pop("HF_HUB_OFFLINE", None)
    env.update(PYTHONPATH=ROOT, HF_HOME=str(tmp_path / "hf_home"), **variables)
    return env


def run_recipe(script, argv, env, timeout=600):
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, script, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    return result, time.monotonic() - started


@pytest.mark.parametrize("network", ["offline", "unreachable"])
def test_a_hub_model_not_cached_stops_the_recipe_at_once_naming_the_flag(tmp_path, network):
    variables = {"HF_HUB_OFFLINE": "1"} if network == "offline" else {"HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}

    result, seconds = run_recipe("recipes/en_de.py", ["--output_dir", str(tmp_path / "out")],
                                 recipe_env(tmp_path, **variables), timeout=120)

    assert result.returncode == 2 and seconds < OFFLINE_SECONDS, (seconds, result.stderr[-3000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    why = "offline mode is on (HF_HUB_OFFLINE=1)" if network == "offline" else \
        f"{variables.get('HF_ENDPOINT')} cannot be reached"
    assert lines[0].startswith(
        f"en_de.py: error: model_name_or_path: 'Helsinki-NLP/opus-mt-en-de' is not a local directory, {why}, "
        "and no copy of it is cached on this machine; give --model_name_or_path a local directory"
    ), lines[0]
    assert "HF_HUB_OFFLINE=1" in lines[0] and "hf download Helsinki-NLP/opus-mt-en-de" in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("network", ["offline", "unreachable"])
def test_a_hub_dataset_not_cached_stops_the_recipe_at_once_naming_train_source(tmp_path, network):
    model = save_checkpoint(tmp_path / "opus-mt-tiny", "marian")
    variables = {"HF_HUB_OFFLINE": "1"} if network == "offline" else {"HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}

    result, seconds = run_recipe(
        "recipes/en_de.py", ["--model_name_or_path", model, "--output_dir", str(tmp_path / "out"), "--use_cpu"],
        recipe_env(tmp_path, **variables), timeout=120,
    )

    assert result.returncode == 2 and seconds < OFFLINE_SECONDS, (seconds, result.stderr[-3000:])
    lines = [line for line in result.stderr.strip().splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert lines[0].startswith("en_de.py: error: train_source: hub:wmt/wmt16:de-en (split 'train'): "), lines[0]
    assert "no copy of it is cached on this machine" in lines[0] and "give a local file" in lines[0]


SIZE = [
    "--max_steps", "2", "--max_train_samples", "16", "--max_eval_samples", "4", "--per_device_train_batch_size", "4",
    "--gradient_accumulation_steps", "1", "--eval_steps", "2", "--save_steps", "2", "--generation_num_beams", "1",
    "--generation_max_length", "8", "--use_cpu",
]


@pytest.fixture
def stand_in_hub(fake_hub, tmp_path):
    """The stand-in Hub serving Helsinki-NLP/opus-mt-en-de (tiny, opus-mt's file layout) and wmt16 (de-en)."""
    model = save_opus_mt_checkpoint(tmp_path / "opus-mt-en-de", sentence_pairs(40, seed=0))
    publish(fake_hub, "Helsinki-NLP/opus-mt-en-de", folder_files(tmp_path / "opus-mt-en-de"))
    publish(fake_hub, "wmt/wmt16", wmt16_files("de-en"), repo_type="dataset")
    return fake_hub, model


def test_python_recipes_en_de_downloads_trains_evaluates_and_pushes_back(stand_in_hub, tmp_path):
    hub, base = stand_in_hub
    out = tmp_path / "opus-mt-en-de-wmt16"
    # The recipe's own sources (hub:wmt/wmt16:de-en), unchanged: only size flags and where to push.
    argv = [*SIZE, "--output_dir", str(out), "--push_to_hub", "--hub_model_id", "someone/opus-mt-en-de-wmt16",
            "--hub_token", TOKEN]
    env = recipe_env(tmp_path, HF_ENDPOINT=os.environ["HF_ENDPOINT"], HF_HUB_DISABLE_XET="1", NO_PROXY="127.0.0.1")

    result, _ = run_recipe("recipes/en_de.py", argv, env)

    assert result.returncode == 0, result.stderr[-4000:]
    downloads = {request["path"] for request in hub.received
                 if request["method"] == "GET" and "/resolve/" in request["path"]}
    for name in ("config.json", "model.safetensors", "source.spm", "vocab.json"):
        assert any(re.fullmatch(f"/Helsinki-NLP/opus-mt-en-de/resolve/[^/]+/{name}", path) for path in downloads), name
    for split in ("train", "validation"):
        assert any(re.fullmatch(f"/datasets/wmt/wmt16/resolve/[^/]+/de-en/{split}-00000-of-00001.parquet", path)
                   for path in downloads), (split, downloads)
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "base_model: Helsinki-NLP/opus-mt-en-de" in card and "newstest2015" in card
    assert {"config.json", "model.safetensors", "README.md", "scores.json", "source.spm"} <= set(hub.committed)
    assert hub.committed["README.md"] == card.encode()
