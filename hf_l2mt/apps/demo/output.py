"""Saving the output: --output_dir replaces only an empty folder or a previous demo output, and is swapped in whole."""

import json
import os
import shutil
import uuid

from ...evaluation.metrics import save_scores
from ..report.files import write_report_files
from .arguments import DemoArguments

RESULTS_FILE = "demo_results.json"
DEMO_NAME = "hf_l2mt.apps.demo"  # what demo_results.json says wrote it


class NotADemoOutputError(ValueError):
    """--output_dir holds something that is not a previous demo output."""


def check_output_dir_is_replaceable(args: DemoArguments) -> None:
    """Refuse to replace anything but an empty folder or a previous demo output, unless told to."""
    path = args.output_dir
    if not os.path.exists(path) or args.overwrite_output_dir:
        return
    if not os.path.isdir(path):
        raise NotADemoOutputError(f"--output_dir: {path!r} is a file; give a folder path, or --overwrite_output_dir")
    if os.listdir(path) and not is_demo_output(path):
        raise NotADemoOutputError(
            f"--output_dir: {path!r} exists and is not a previous demo output (it has no {RESULTS_FILE} written by "
            f"{DEMO_NAME}); choose another folder, or pass --overwrite_output_dir to replace it"
        )


def is_demo_output(path: str) -> bool:
    try:
        with open(os.path.join(path, RESULTS_FILE), encoding="utf-8") as handle:
            return json.load(handle).get("demo") == DEMO_NAME
    except (OSError, ValueError, AttributeError):
        return False


def fresh_dir(parent: str, name: str) -> str:
    """A new hidden folder in ``parent`` (unlike ``mkdtemp``, with the umask's permissions, as it is kept)."""
    path = os.path.join(parent, f".{name}-{uuid.uuid4().hex[:8]}")
    os.makedirs(path)
    return path


def save_output(
    args: DemoArguments, model, tokenizer, results: dict, forgetting: dict, train_sources: list[str]
) -> None:
    """Write model, tokenizer, results and the forgetting report (JSON, PNG, page; word frequencies counted in
    ``train_sources``) to a temporary folder, then swap it in for --output_dir."""
    parent = os.path.dirname(os.path.abspath(args.output_dir))
    os.makedirs(parent, exist_ok=True)
    work = fresh_dir(parent, "numbers_demo")
    try:
        model.save_pretrained(work)
        tokenizer.save_pretrained(work)
        save_scores(results, os.path.join(work, RESULTS_FILE))
        write_report_files(forgetting, work, train_sources=train_sources, train_name="the fine-tuning pairs")
        old = None
        if os.path.lexists(args.output_dir):
            old = fresh_dir(parent, "numbers_demo-previous")
            os.replace(args.output_dir, os.path.join(old, "previous"))
        os.replace(work, args.output_dir)
        if old is not None:
            shutil.rmtree(old)
    finally:
        shutil.rmtree(work, ignore_errors=True)
