"""The L2-SP pieces on FSDP2-sharded parameters, next to an unsharded copy of the same model in the same process.

    python -m torch.distributed.run --nproc_per_node 2 tests/distributed/fsdp_shards.py REPORT_DIR

Each process shards the tiny Marian with ``fully_shard`` (one unit per layer, then the root), builds an
L2MTTrainer on it and one on an unsharded copy, moves both away from their anchors by the same amount and
writes into REPORT_DIR ``rank<R>.json`` (anchor sizes and logged metrics) and ``rank<R>.safetensors``
(gathered results of the sharded run under ``sharded.*``, the unsharded reference under ``reference.*``).
"""

import argparse
import json
import os
import sys

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [TESTS_DIR, os.path.dirname(TESTS_DIR)]  # conftest's helpers and this checkout's hf_l2mt
from conftest import make_args  # noqa: E402
from distributed.train_tiny import build_model  # noqa: E402
from hf_l2mt import L2MTTrainer  # noqa: E402
from hf_l2mt.core import anchor  # noqa: E402

SETTINGS = dict(l2sp_lambda=0.5, weight_decay=0.05, max_steps=4)


def shard(model):
    for layer in [*model.model.encoder.layers, *model.model.decoder.layers]:
        fully_shard(layer)
    fully_shard(model)
    return model


def full(tensor: torch.Tensor) -> torch.Tensor:
    return (tensor.full_tensor() if isinstance(tensor, DTensor) else tensor).detach().clone()


def trainer_for(model, output_dir: str, l2sp_mode: str) -> L2MTTrainer:
    trainer = L2MTTrainer(model=model, args=make_args(output_dir, l2sp_mode=l2sp_mode, **SETTINGS))
    trainer.create_optimizer()
    trainer._build_anchor()
    return trainer


def anchored(trainer: L2MTTrainer) -> dict[str, torch.nn.Parameter]:
    """The live (possibly sharded) parameters that L2-SP pulls on, by name, in group order."""
    return {n: p for g in trainer.regularized_groups if g.has_l2sp for n, p in zip(g.names, g.params)}


def move_away(trainer: L2MTTrainer) -> None:
    """θ ← θ + δ with the same δ (seeded) on every process; a sharded parameter takes its shard of δ."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in anchored(trainer).values():
            delta = 0.1 * torch.randn(p.shape, generator=generator)
            if isinstance(p, DTensor):
                delta = distribute_tensor(delta, p.device_mesh, p.placements)
            p.add_(delta)


def run(trainer: L2MTTrainer, name: str, out: dict) -> dict:
    """Coupled gradient, then one optimizer step with zero task gradient (the decoupled move and decay)."""
    move_away(trainer)
    metrics = trainer.regularization_metrics()
    named = anchored(trainer)
    names, params = list(named), list(named.values())
    for p in params:
        p.grad = None
    trainer._add_coupled_l2sp()
    out.update({f"{name}.coupled_grad.{n}": full(p.grad) for n, p in zip(names, params)})
    for p in params:
        p.grad = torch.zeros_like(p)
    trainer.optimizer.step()
    out.update({f"{name}.after_step.{n}": full(p) for n, p in zip(names, params)})
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_dir")
    cli = parser.parse_args()
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    report, tensors = {"world_size": dist.get_world_size()}, {}
    for mode in ("coupled", "decoupled"):
        sharded = trainer_for(shard(build_model(seed=0)), os.path.join(cli.report_dir, "sharded"), mode)
        reference = trainer_for(build_model(seed=0), os.path.join(cli.report_dir, "reference"), mode)
        if mode == "coupled":
            report["anchor_local_numel"] = sum(a.to_local().numel() for a in sharded.anchor.values())
            report["anchor_numel"] = sum(a.numel() for a in sharded.anchor.values())
            report["anchor_is_sharded"] = all(isinstance(a, DTensor) for a in sharded.anchor.values())
            checkpoint = os.path.join(cli.report_dir, "checkpoint")
            gathered = anchor.gather(sharded.anchor, keep=rank == 0)
            if rank == 0:
                os.makedirs(checkpoint, exist_ok=True)
                anchor.save(gathered, checkpoint)
            report["gathered_on_rank"] = len(gathered)
            dist.barrier()
            reloaded = anchor.load(checkpoint, anchored(sharded), "float32")
            report["reloaded_equal"] = all(
                isinstance(reloaded[n], DTensor) and torch.equal(reloaded[n].to_local(), a.to_local())
                for n, a in sharded.anchor.items()
            )
        report[f"{mode}.metrics.sharded"] = run(sharded, f"{mode}.sharded", tensors)
        report[f"{mode}.metrics.reference"] = run(reference, f"{mode}.reference", tensors)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(cli.report_dir, f"rank{rank}.safetensors"))
    with open(os.path.join(cli.report_dir, f"rank{rank}.json"), "w") as f:
        json.dump(report, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
