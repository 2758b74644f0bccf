"""Publish a finished run (model, tokenizer, README.md model card) to the Hugging Face Hub.

Only what a user of the model needs is uploaded. Never uploaded: intermediate checkpoints
(``checkpoint-*``, which hold optimizer states and the anchor), the L2-SP anchor file, and
``training_args.bin`` (a pickle of the training arguments, which holds ``hub_token`` when one was given).
"""

import logging
import os

from huggingface_hub import HfApi

from ..core.anchor import ANCHOR_FILE
from ..core.run_lock import LOCK_FILE

logger = logging.getLogger(__name__)

# upload_folder matches these with fnmatch against paths relative to the folder; "*" also matches "/".
NEVER_UPLOADED = [
    "checkpoint-*", "*/checkpoint-*",
    ANCHOR_FILE, f"*/{ANCHOR_FILE}", f"{ANCHOR_FILE}.tmp",
    "training_args.bin", "*/training_args.bin",
    "*.tmp", LOCK_FILE,
]


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
    if not os.path.isfile(os.path.join(output_dir, "config.json")):
        raise ValueError(
            f"push_to_hub: {output_dir!r} has no config.json, so it holds no saved model; "
            "pass the directory given to trainer.save_model / save_pretrained"
        )
    if not os.path.isfile(os.path.join(output_dir, "README.md")):
        logger.warning("push_to_hub: %s has no README.md; the model is published without a model card", output_dir)
    api = HfApi(token=token)
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
    # A copy: upload_folder appends its own defaults to the list it is given (huggingface_hub 2.4).
    ignore_patterns = list(NEVER_UPLOADED)
    commit = api.upload_folder(
        repo_id=repo_url.repo_id, folder_path=output_dir, commit_message=commit_message, ignore_patterns=ignore_patterns
    )
    logger.info("Pushed %s to %s", output_dir, repo_url)
    return commit.commit_url
