"""Multi-process training, launched for real: DDP through `accelerate launch` (gloo on CPU) and FSDP2 shards.

Each launch starts two processes on this machine (recipes/accelerate_configs/cpu_multi_process.yaml, as one
machine or as two "machines" of one process each through accelerate's --num_machines 2, or
torchrun for FSDP2 because `accelerate launch --use_fsdp` without a GPU runs each process alone).
Tolerance: the two runs sum the same token losses in another order (gradients all-reduced across processes),
so they agree to round-off only (conftest.reordered_adamw_tolerance).
"""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from conftest import assert_same_params, logged_sum_rtol, reordered_adamw_tolerance
from distributed.train_tiny import L2SP_MODES, build_model, train
from hf_l2mt.core.anchor import ANCHOR_FILE

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(REPO, "tests", "distributed")
CPU_CONFIG = os.path.join(REPO, "recipes", "accelerate_configs", "cpu_multi_process.yaml")
PER_DEVICE_BATCH = 2
LAUNCH_TIMEOUT_S = 240


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(launcher: list[str], script: str, *script_args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", *launcher, os.path.join(SCRIPTS, script), *script_args]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited with {done.returncode}:\n{done.stderr[-4000:]}")


def read_reports(report_dir, stem: str) -> list[tuple[dict, dict]]:
    return [
        (json.loads((report_dir / f"rank{rank}{stem}.json").read_text()), load_file(report_dir / f"rank{rank}{stem}.safetensors"))
        for rank in (0, 1)
    ]


def prefixed(tensors: dict, prefix: str) -> dict:
    return {name[len(prefix):]: t for name, t in tensors.items() if name.startswith(prefix)}


# ---- DDP ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """Two processes x per-device batch 2, L2-SP coupled then decoupled."""
    root = tmp_path_factory.mktemp("ddp")
    launcher = ["accelerate.commands.launch", "--config_file", CPU_CONFIG, "--main_process_port", str(free_port())]
    launch(launcher, "train_tiny.py", str(root / "out"), str(root / "reports"),
           "--per_device_train_batch_size", str(PER_DEVICE_BATCH))
    return root


@pytest.fixture(scope="module")
def two_machines_run(tmp_path_factory):
    """accelerate's multi-machine launch: two "machines" of one process each (machine_rank 0 and 1), meeting at
    --main_process_ip 127.0.0.1 over gloo, as two nodes of a cluster would; same data and batch as ddp_run."""
    root = tmp_path_factory.mktemp("two_machines")
    port = str(free_port())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    machines = []
    for rank in (0, 1):
        command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", CPU_CONFIG,
                   "--num_machines", "2", "--machine_rank", str(rank), "--num_processes", "2",
                   "--main_process_ip", "127.0.0.1", "--main_process_port", port,
                   os.path.join(SCRIPTS, "train_tiny.py"), str(root / "out"), str(root / "reports"),
                   "--per_device_train_batch_size", str(PER_DEVICE_BATCH)]
        machines.append((command, subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE,
                                                   stderr=subprocess.PIPE, text=True)))
    for command, machine in machines:
        _, stderr = machine.communicate(timeout=LAUNCH_TIMEOUT_S)
        if machine.returncode != 0:
            pytest.fail(f"{' '.join(command)} exited with {machine.returncode}:\n{stderr[-4000:]}")
    return root


LAUNCHES = ["ddp_run", "two_machines_run"]


@pytest.mark.parametrize("launch_name", LAUNCHES)
@pytest.mark.parametrize("l2sp_mode", L2SP_MODES)
def test_two_processes_equal_one_process_with_twice_the_batch(request, launch_name, tmp_path, l2sp_mode):
    ddp_run = request.getfixturevalue(launch_name)
    reports = read_reports(ddp_run / "reports", f"-{l2sp_mode}")
    assert [report["world_size"] for report, _ in reports] == [2, 2]
    single = train(str(tmp_path / l2sp_mode), l2sp_mode, 2 * PER_DEVICE_BATCH, seed=0)
    expected = {n: p.detach() for n, p in single.model.named_parameters()}
    # Each gradient sums in another order the 2 x 2 targets of at most 8 tokens (32 terms) of an update, each
    # through sums at most 32 wide (the feed-forward layers), over the script's 3 steps.
    tolerance = reordered_adamw_tolerance(3, terms=32 + 32)
    for _, tensors in reports:
        assert_same_params(prefixed(tensors, "param."), expected, **tolerance)
    logged = [row["l2sp_distance"] for row in single.state.log_history if "l2sp_distance" in row]
    # After t steps each parameter is within reordered_adamw_tolerance(t, ...) of the single process's, so ‖θ − θ₀‖
    # is within ‖δθ‖ ≤ √N · atol + rtol · ‖θ‖ (triangle inequality; ‖θ‖ barely changes in 3 steps of lr 1e-2),
    # plus logged_sum_rtol for its float32 sums (40 tensors, the largest of 512 elements, a difference and a square
    # a term). That is 4 %, 6 % and 9 % of the distances at steps 1 to 3 (Adam's lr / eps = 100 amplifies every
    # round-off): a distance summed over the 2 processes (×√2) or taken from another process's start lies outside.
    trained = [p.detach() for p in single.model.parameters() if p.requires_grad]
    numel, norm = sum(p.numel() for p in trained), sum(float(p.pow(2).sum()) for p in trained) ** 0.5
    rel = logged_sum_rtol(tensors=40, largest=512, roundings_per_term=2)
    for report, _ in reports:
        got = [row["l2sp_distance"] for row in report["logged"]]
        assert len(got) == len(logged)
        for step, (distance, want) in enumerate(zip(got, logged), start=1):
            bound = reordered_adamw_tolerance(step, terms=32 + 32)
            assert abs(distance - want) <= numel**0.5 * bound["atol"] + bound["rtol"] * norm + rel * want


@pytest.mark.parametrize("launch_name", LAUNCHES)
@pytest.mark.parametrize("l2sp_mode", L2SP_MODES)
def test_anchor_is_rank_zeros_weights_on_every_process(request, launch_name, l2sp_mode):
    """Each process built the model with its own seed; DDP trains rank 0's weights, and the anchor must be them."""
    ddp_run = request.getfixturevalue(launch_name)
    rank0_weights = {n: p.detach() for n, p in build_model(seed=0).named_parameters()}
    for _, tensors in read_reports(ddp_run / "reports", f"-{l2sp_mode}"):
        anchor = prefixed(tensors, "anchor.")
        assert anchor and all(torch.equal(t, rank0_weights[n]) for n, t in anchor.items())


@pytest.mark.parametrize("launch_name", LAUNCHES)
@pytest.mark.parametrize("l2sp_mode", L2SP_MODES)
def test_only_the_main_process_writes_checkpoints_and_cards(request, launch_name, l2sp_mode):
    ddp_run = request.getfixturevalue(launch_name)
    checkpoint = ddp_run / "out" / l2sp_mode / "checkpoint-3"
    files = sorted(os.listdir(checkpoint))
    assert files.count(ANCHOR_FILE) == 1 and "README.md" in files
    assert not [f for f in files if f.endswith(".tmp")]
    # transformers keeps one RNG state per process, so that a resumed run continues every process's stream.
    assert [f for f in files if f.startswith("rng_state")] == ["rng_state_0.pth", "rng_state_1.pth"]
    (main, _), (other, _) = read_reports(ddp_run / "reports", f"-{l2sp_mode}")
    assert f"{l2sp_mode}/checkpoint-3/{ANCHOR_FILE}" in main["writes"]
    assert f"{l2sp_mode}/checkpoint-3/README.md" in main["writes"]
    assert f"{l2sp_mode}/checkpoint-3/trainer_state.json" in main["writes"]
    # The other process only makes sure the checkpoint folder exists (os.makedirs(exist_ok=True)).
    assert other["writes"] == [f"{l2sp_mode}/checkpoint-3"]


# ---- FSDP2 ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fsdp_reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdp")
    launcher = ["torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port())]
    launch(launcher, "fsdp_shards.py", str(root))
    return read_reports(root, "")


def test_sharded_anchor_holds_one_shard_per_process(fsdp_reports):
    for report, _ in fsdp_reports:
        assert report["anchor_is_sharded"]
        # fully_shard splits dim 0 evenly over 2 processes; the tiny Marian has even dims 0 throughout.
        assert report["anchor_local_numel"] * 2 == report["anchor_numel"]


def test_sharded_anchor_is_saved_gathered_by_rank_zero_and_reloads_sharded(fsdp_reports):
    (main, _), (other, _) = fsdp_reports
    assert main["gathered_on_rank"] == 40 and other["gathered_on_rank"] == 0
    assert main["reloaded_equal"] and other["reloaded_equal"]


@pytest.mark.parametrize("l2sp_mode", L2SP_MODES)
def test_sharded_metrics_equal_unsharded_on_every_process(fsdp_reports, l2sp_mode):
    for report, _ in fsdp_reports:
        sharded, reference = report[f"{l2sp_mode}.metrics.sharded"], report[f"{l2sp_mode}.metrics.reference"]
        assert sharded["l2sp_penalty"] > 0
        # The same θ and θ₀ elementwise, summed in another order: each tensor in two shards joined across the
        # processes (still at most log2(512) = 9 pairwise levels), 40 tensors, a difference and a square a term.
        assert sharded == pytest.approx(reference, rel=logged_sum_rtol(tensors=40, largest=512, roundings_per_term=2))


@pytest.mark.parametrize("l2sp_mode", L2SP_MODES)
@pytest.mark.parametrize("result", ["coupled_grad", "after_step"])
def test_sharded_update_equals_unsharded(fsdp_reports, l2sp_mode, result):
    for _, tensors in fsdp_reports:
        sharded = prefixed(tensors, f"{l2sp_mode}.sharded.{result}.")
        reference = prefixed(tensors, f"{l2sp_mode}.reference.{result}.")
        assert len(sharded) == 40
        assert_same_params(sharded, reference)
