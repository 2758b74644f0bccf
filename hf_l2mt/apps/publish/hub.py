"""Publish a finished run (model or LoRA adapter, tokenizer, README.md model card) to the Hugging Face Hub.

Only what a user of the model needs is uploaded. Never uploaded: intermediate checkpoints
(``checkpoint-*``, which hold optimizer states and the anchor), the model of the last update that a run
averaging its checkpoints keeps in ``last/`` (the published model is the average), the L2-SP anchor file,
and ``training_args.bin`` (a pickle of the training arguments, which holds ``hub_token`` when one was given).
"""

import logging
import os

from huggingface_hub import HfApi

from ...core.anchor import ANCHOR_FILE
from ...core.lora import adapter_base_model, is_adapter_directory
from ...core.run_lock import LOCK_FILE
from ..weights.average import UNAVERAGED_DIR

logger = logging.getLogger(__name__)

# upload_folder matches these with fnmatch against paths relative to the folder; "*" also matches "/".
NEVER_UPLOADED = [
    "checkpoint-*", "*/checkpoint-*", f"{UNAVERAGED_DIR}/*", "average-last-*/*", "interpolated/*",
    ANCHOR_FILE, f"*/{ANCHOR_FILE}", f"{ANCHOR_FILE}.tmp",
    "training_args.bin", "*/training_args.bin",
    "*.tmp", LOCK_FILE,
]


# An adapter is published alone; the merged model of lora_save_merged is a model of its own (push output_dir/merged).
ADAPTER_NOT_UPLOADED = ["merged/*"]


def _check_adapter_base(output_dir: str) -> None:
    """An adapter is usable only on its base model, so the base must be one a downloader can fetch: a Hub id."""
    base = adapter_base_model(output_dir)
    if not base or os.path.isabs(os.path.expanduser(base)) or base.startswith(".") or os.path.isdir(base):
        what = "names no base model" if not base else f"names the local base model {base!r}"
        raise ValueError(
            f"push_to_hub: {output_dir!r} is a LoRA adapter whose adapter_config.json {what}; a downloader could "
            "not load it. Set base_model_name_or_path there to the base's Hub id (e.g. "
            "'Helsinki-NLP/opus-mt-en-de'), or push the merged model (lora_save_merged) instead"
        )


def push_to_hub(
    output_dir: str,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload model fine-tuned with hf_l2mt",
) -> str:
    """Create ``repo_id`` if needed and upload ``output_dir`` in one commit; returns the commit URL.

    ``token=None`` uses ``HF_TOKEN`` or the token saved by ``hf auth login``. ``private``
    only applies when the repository is created; an existing repository keeps its visibility.
    """
    if not os.path.isdir(output_dir):
        raise ValueError(f"push_to_hub: output_dir {output_dir!r} is not a directory")
    adapter = is_adapter_directory(output_dir)
    if adapter:
        _check_adapter_base(output_dir)
    elif not os.path.isfile(os.path.join(output_dir, "config.json")):
        raise ValueError(
            f"push_to_hub: {output_dir!r} has no config.json (nor adapter_config.json), so it holds no saved model; "
            "pass the directory given to trainer.save_model / save_pretrained"
        )
    if not os.path.isfile(os.path.join(output_dir, "README.md")):
        logger.warning("push_to_hub: %s has no README.md; the model is published without a model card", output_dir)
    api = HfApi(token=token)
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
    # A copy: upload_folder appends its own defaults to the list it is given (huggingface_hub 2.4).
    ignore_patterns = list(NEVER_UPLOADED) + (ADAPTER_NOT_UPLOADED if adapter else [])
    commit = api.upload_folder(
        repo_id=repo_url.repo_id, folder_path=output_dir, commit_message=commit_message, ignore_patterns=ignore_patterns
    )
    logger.info("Pushed %s to %s", output_dir, repo_url)
    return commit.commit_url
