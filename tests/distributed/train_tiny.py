"""Train the tiny Marian for a few updates in each launched process and write what test_distributed compares.

    accelerate launch --config_file recipes/accelerate_configs/cpu_multi_process.yaml \
        tests/distributed/train_tiny.py OUTPUT_DIR REPORT_DIR --per_device_train_batch_size 2

Runs L2-SP coupled, then decoupled, each into OUTPUT_DIR/<mode>. Every process writes into REPORT_DIR:
``rank<R>-<mode>.safetensors`` (its final parameters and its anchor) and ``rank<R>-<mode>.json`` (the files
it wrote under OUTPUT_DIR and its logged L2-SP metrics). Each process builds the model with its own seed, as
processes that initialise a new head without a common seed would; data parallelism must train rank 0's model.
"""

import argparse
import json
import os
import sys

from huggingface_hub import ModelCard
from safetensors.torch import save_file

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [TESTS_DIR, os.path.dirname(TESTS_DIR)]  # conftest's helpers and this checkout's hf_l2mt
from conftest import PadCollator, make_args, task_dataset, tiny_marian  # noqa: E402
from hf_l2mt import L2MTTrainer  # noqa: E402
from hf_l2mt.apps.recipes.runner import ModelCardCallback  # noqa: E402

L2SP_MODES = ("coupled", "decoupled")
CARD = "---\nlicense: mit\n---\n\nA tiny Marian trained by tests/distributed/train_tiny.py.\n"
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def training_settings(per_device_train_batch_size: int, max_steps: int = 3) -> dict:
    """Ragged targets, a schedule, clipping and weight decay: everything whose sum over processes must be exact."""
    return dict(
        per_device_train_batch_size=per_device_train_batch_size, max_steps=max_steps, save_strategy="steps",
        save_steps=max_steps, l2sp_lambda=0.5, weight_decay=0.05, lr_scheduler_type="linear", max_grad_norm=1.0,
    )


def build_model(seed: int):
    model = tiny_marian(seed=seed)
    for name, param in model.named_parameters():
        if name.endswith("k_proj.bias"):  # see conftest.marian(): their gradient is pure round-off
            param.requires_grad_(False)
    return model


def train(output_dir: str, l2sp_mode: str, per_device_train_batch_size: int, seed: int = 0) -> L2MTTrainer:
    args = make_args(output_dir, l2sp_mode=l2sp_mode, **training_settings(per_device_train_batch_size))
    trainer = L2MTTrainer(
        model=build_model(seed), args=args, train_dataset=task_dataset(16, seed=5), data_collator=PadCollator(),
        callbacks=[ModelCardCallback(lambda scores: ModelCard(CARD), {})],
    )
    trainer.train()
    trainer.save_model()
    return trainer


class WriteRecorder:
    """Records every file this process opens for writing, renames or creates under ``root`` (PEP 578 audit hooks
    see Python's own I/O and the os.replace that publishes files written by native code such as safetensors)."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self.paths: list[str] = []
        sys.addaudithook(self)

    def __call__(self, event: str, args: tuple) -> None:
        if event == "open" and isinstance(args[0], (str, os.PathLike)):
            mode, flags = args[1], args[2]
            if (isinstance(mode, str) and set(mode) & set("wax+")) or (flags or 0) & WRITE_FLAGS:
                self._add(args[0])
        elif event in ("os.rename", "os.mkdir", "os.remove"):
            self._add(args[1] if event == "os.rename" else args[0])

    def _add(self, path) -> None:
        path = os.path.abspath(os.fsdecode(path))
        if path.startswith(self.root + os.sep):
            self.paths.append(os.path.relpath(path, self.root))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir")
    parser.add_argument("report_dir")
    parser.add_argument("--per_device_train_batch_size", type=int, required=True)
    cli = parser.parse_args()
    rank = int(os.environ.get("RANK", "0"))
    recorder = WriteRecorder(cli.output_dir)
    os.makedirs(cli.report_dir, exist_ok=True)
    for mode in L2SP_MODES:
        recorder.paths.clear()
        trainer = train(os.path.join(cli.output_dir, mode), mode, cli.per_device_train_batch_size, seed=rank)
        model = trainer.accelerator.unwrap_model(trainer.model)
        tensors = {f"param.{n}": p.detach().contiguous() for n, p in model.named_parameters()}
        tensors.update({f"anchor.{n}": a.contiguous() for n, a in trainer.anchor.items()})
        save_file(tensors, os.path.join(cli.report_dir, f"rank{rank}-{mode}.safetensors"))
        logged = [{k: row[k] for k in ("l2sp_penalty", "l2sp_distance")} for row in trainer.state.log_history if "l2sp_penalty" in row]
        report = {"world_size": trainer.accelerator.num_processes, "writes": sorted(set(recorder.paths)), "logged": logged}
        with open(os.path.join(cli.report_dir, f"rank{rank}-{mode}.json"), "w") as f:
            json.dump(report, f)
    trainer.end()  # destroy the process group before exit, as hf_l2mt.apps.recipes.runner.end_process_group says why


if __name__ == "__main__":
    main()
