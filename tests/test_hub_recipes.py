"""The Hub path of the recipes as users run it: ``python recipes/en_de.py`` offline, online, and launched.

Offline (``HF_HUB_OFFLINE=1``, or ``HF_ENDPOINT`` on a closed port) and nothing cached, a recipe stops
at once with one line naming the flag and the fix: without connecting, or after one connection attempt
(the probe), where huggingface_hub would retry for about 50 s. Online, a local stand-in Hub
(tests/hub_server.py) serves the checkpoint and the dataset under their real ids; nothing leaves 127.0.0.1.
"""

import json
import os
import re
import socket
import subprocess
import sys

import pytest

from hub_server import TOKEN, fake_hub, folder_files, publish  # noqa: F401 (fake_hub is a fixture)
from tiny_checkpoints import (
    save_checkpoint, save_opus_mt_checkpoint, save_t5_checkpoint, sentence_pairs, wmt16_files,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONNECTION_LOG = os.path.join(ROOT, "tests", "connection_log")


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


def run_recipe(script, argv, env, timeout=600, launcher=(sys.executable,)):
    return subprocess.run(
        [*launcher, script, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def offline_run(tmp_path, network, argv):
    """Runs recipes/en_de.py with the Hub ``network`` (offline, or unreachable at a closed port).

    Returns the result and the connections the process attempted to the Hub's address. Each retry of
    huggingface_hub or datasets is one more (8 to 19 were seen without the probe); the probe is one.
    """
    endpoint = f"127.0.0.1:{closed_port()}"
    variables = {"HF_HUB_OFFLINE": "1"} if network == "offline" else {"HF_ENDPOINT": f"http://{endpoint}"}
    log = tmp_path / "connections.log"
    env = recipe_env(tmp_path, CONNECTION_LOG=str(log), **variables)
    env["PYTHONPATH"] = os.pathsep.join([CONNECTION_LOG, env["PYTHONPATH"]])
    # A generous guard against a hang; what the test checks is the connections, not the time.
    result = run_recipe("recipes/en_de.py", argv, env, timeout=300)
    attempts = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return result, [address for address in attempts if address == endpoint]


@pytest.mark.parametrize("network", ["offline", "unreachable"])
def test_a_hub_model_not_cached_stops_the_recipe_at_once_naming_the_flag(tmp_path, network):
    result, connections = offline_run(tmp_path, network, ["--output_dir", str(tmp_path / "out")])

    assert result.returncode == 2, result.stderr[-3000:]
    assert len(connections) == (0 if network == "offline" else 1), connections
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    why = "offline mode is on (HF_HUB_OFFLINE=1)" if network == "offline" else \
        f"http://{connections[0]} cannot be reached"
    assert lines[0].startswith(
        f"en_de.py: error: model_name_or_path: 'Helsinki-NLP/opus-mt-en-de' is not a local directory, {why}, "
        "and no copy of it is cached on this machine; give --model_name_or_path a local directory"
    ), lines[0]
    assert "HF_HUB_OFFLINE=1" in lines[0] and "hf download Helsinki-NLP/opus-mt-en-de" in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("network", ["offline", "unreachable"])
def test_a_hub_dataset_not_cached_stops_the_recipe_at_once_naming_train_source(tmp_path, network):
    model = save_checkpoint(tmp_path / "opus-mt-tiny", "marian")

    result, connections = offline_run(
        tmp_path, network, ["--model_name_or_path", model, "--output_dir", str(tmp_path / "out"), "--use_cpu"])

    assert result.returncode == 2, result.stderr[-3000:]
    assert len(connections) == (0 if network == "offline" else 1), connections
    lines = [line for line in result.stderr.strip().splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert lines[0].startswith("en_de.py: error: train_source: hub:wmt/wmt16:de-en (split 'train'): "), lines[0]
    assert "no copy of it is cached on this machine" in lines[0] and "give a local file" in lines[0]


SIZE = [
    "--max_steps", "2", "--max_train_samples", "16", "--max_eval_samples", "4", "--per_device_train_batch_size", "4",
    "--gradient_accumulation_steps", "1", "--eval_steps", "2", "--save_steps", "2", "--generation_num_beams", "1",
    "--generation_max_length", "8", "--use_cpu",
]
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch"]


def launcher(name: str) -> list[str]:
    """The command before the recipe script: plain Python, or ``accelerate launch`` with one or two CPU processes."""
    if name == "python":
        return [sys.executable]
    if name == "accelerate":
        return [*ACCELERATE, "--num_processes", "1", "--cpu", "--num_machines", "1", "--mixed_precision", "no",
                "--dynamo_backend", "no"]
    config = os.path.join(ROOT, "recipes", "accelerate_configs", "cpu_multi_process.yaml")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    return [*ACCELERATE, "--config_file", config, "--main_process_port", port]


def online_env(tmp_path) -> dict:
    """A recipe run's environment with the stand-in Hub as HF_ENDPOINT; one thread per process (2 cores)."""
    return recipe_env(tmp_path, HF_ENDPOINT=os.environ["HF_ENDPOINT"], HF_HUB_DISABLE_XET="1", NO_PROXY="127.0.0.1",
                      OMP_NUM_THREADS="1")


def downloads(hub) -> list[str]:
    """The paths of the files the stand-in sent (GET .../resolve/...), once per request."""
    return [request["path"] for request in hub.received
            if request["method"] == "GET" and "/resolve/" in request["path"]]


@pytest.fixture
def stand_in_hub(fake_hub, tmp_path):
    """The stand-in Hub serving Helsinki-NLP/opus-mt-en-de (tiny, opus-mt's file layout) and wmt16 (de-en)."""
    save_opus_mt_checkpoint(tmp_path / "opus-mt-en-de", sentence_pairs(40, seed=0))
    publish(fake_hub, "Helsinki-NLP/opus-mt-en-de", folder_files(tmp_path / "opus-mt-en-de"))
    publish(fake_hub, "wmt/wmt16", wmt16_files("de-en"), repo_type="dataset")
    return fake_hub


@pytest.mark.parametrize("launch", [
    "python",
    pytest.param("accelerate", marks=pytest.mark.slow),
    pytest.param("accelerate-2-processes", marks=pytest.mark.slow),
])
def test_recipes_en_de_downloads_trains_evaluates_and_pushes_back(stand_in_hub, tmp_path, launch):
    hub = stand_in_hub
    out = tmp_path / "opus-mt-en-de-wmt16"
    # The recipe's own sources (hub:wmt/wmt16:de-en), unchanged: only size flags and where to push.
    argv = [*SIZE, "--output_dir", str(out), "--push_to_hub", "--hub_model_id", "someone/opus-mt-en-de-wmt16",
            "--hub_token", TOKEN]

    result = run_recipe("recipes/en_de.py", argv, online_env(tmp_path), launcher=launcher(launch))

    assert result.returncode == 0, result.stderr[-4000:]
    sent = downloads(hub)
    # Every file is sent once, whatever the number of processes: the main process downloads the dataset
    # first (main_process_first) and the others read the cache; a checkpoint file two processes ask for at
    # once is fetched by one under huggingface_hub's file lock while the other waits for it.
    assert len(sent) == len(set(sent)), sorted(sent)
    for name in ("config.json", "model.safetensors", "source.spm", "vocab.json"):
        assert any(re.fullmatch(f"/Helsinki-NLP/opus-mt-en-de/resolve/[^/]+/{name}", path) for path in sent), name
    # target.spm is not sent, and need not be: the stand-in's target.spm has the same bytes as its source.spm
    # (train_marian_tokenizer writes one shared SentencePiece model under both names), so the same ETag.
    # huggingface_hub asks for its metadata (HEAD), finds that blob in the cache and links target.spm to it;
    # MarianTokenizer loads both files and tokenizes the targets (text_target) with target.spm. A checkpoint
    # whose two files differ, as most opus-mt checkpoints' do, has target.spm downloaded too.
    assert not any(path.endswith("/target.spm") for path in sent)
    assert any(request["method"] == "HEAD" and request["path"].endswith("/target.spm") for request in hub.received)
    snapshot = next((tmp_path / "hf_home" / "hub" / "models--Helsinki-NLP--opus-mt-en-de" / "snapshots").iterdir())
    assert (snapshot / "target.spm").resolve() == (snapshot / "source.spm").resolve()
    for split in ("train", "validation"):
        assert any(re.fullmatch(f"/datasets/wmt/wmt16/resolve/[^/]+/de-en/{split}-00000-of-00001.parquet", path)
                   for path in sent), (split, sent)
    if launch == "accelerate-2-processes":
        # Each process saves its RNG state for resuming; rank 1's file shows that two processes trained.
        assert (out / "checkpoint-2" / "rng_state_1.pth").is_file(), sorted(os.listdir(out / "checkpoint-2"))
        # Both processes asked the stand-in which files the dataset has; only one fetched them.
        listings = [request for request in hub.received if request["path"].startswith("/api/datasets/wmt/wmt16/tree/")]
        assert len(listings) == 2, [request["path"] for request in listings]
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "base_model: Helsinki-NLP/opus-mt-en-de" in card and "newstest2015" in card
    commits = [request for request in hub.received if request["method"] == "POST" and "/commit/" in request["path"]]
    assert len(commits) == 1, [request["path"] for request in commits]
    assert {"config.json", "model.safetensors", "README.md", "scores.json", "source.spm", "target.spm"} <= set(
        hub.committed)
    assert hub.committed["README.md"] == card.encode()


@pytest.fixture
def stand_in_t5_hub(fake_hub, tmp_path):
    """The stand-in Hub serving google-t5/t5-small (tiny, t5-small's file layout), found at t5-small too, and wmt16."""
    save_t5_checkpoint(tmp_path / "t5-small", sentence_pairs(40, seed=0))
    publish(fake_hub, "google-t5/t5-small", folder_files(tmp_path / "t5-small"), moved_from="t5-small")
    publish(fake_hub, "wmt/wmt16", wmt16_files("de-en"), repo_type="dataset")
    return fake_hub


def test_python_recipes_t5_en_de_downloads_t5_small_from_its_new_id_trains_and_evaluates(stand_in_t5_hub, tmp_path):
    hub = stand_in_t5_hub
    out = tmp_path / "t5-small-en-de-wmt16"

    result = run_recipe("recipes/t5_en_de.py", [*SIZE, "--output_dir", str(out)], online_env(tmp_path))

    assert result.returncode == 0, result.stderr[-4000:]
    sent = downloads(hub)
    # The recipe's default id, t5-small, still resolves with huggingface_hub 2.4 (a single-segment id is
    # refused only by HfFileSystem, which datasets uses and transformers does not): the Hub redirects it
    # to google-t5/t5-small, where every file comes from.
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert any(re.fullmatch(f"/google-t5/t5-small/resolve/[^/]+/{name}", path) for path in sent), (name, sent)
    assert any(request["path"].startswith("/t5-small/resolve/") for request in hub.received)
    assert not any(path.startswith("/t5-small/") for path in sent)
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "base_model: t5-small" in card and "newstest2015" in card
    assert set(json.loads((out / "scores.json").read_text(encoding="utf-8"))) == {"newstest2015"}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(os.listdir(out))
