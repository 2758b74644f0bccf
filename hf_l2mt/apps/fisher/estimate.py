"""``hf-l2mt fisher``: a model's diagonal Fisher estimated on general-domain pairs read from two text files,
saved for EWC (``l2sp_fisher_path``). The maths is ``hf_l2mt.core.fisher``; this module reads the files,
tokenizes the pairs and writes the result."""

import os
import sys
from dataclasses import dataclass, field

from ..translation.commands import default_device, warn_if_prefix_missing

ESTIMATOR = "empirical Fisher per batch: mean over batches of squared gradients of the token-mean NLL"


@dataclass
class FisherSettings:
    """Which model, which pairs, and where the Fisher goes."""

    # Parameters that control the model and the data
    model_name_or_path: str = field(metadata={"metavar": "MODEL", "help": "the base model to fine-tune"})
    source_file: str = field(metadata={"metavar": "FILE", "help": "UTF-8 sources, one sentence per line"})
    target_file: str = field(metadata={"metavar": "FILE", "help": "UTF-8 targets, line i translating line i"})
    output: str = field(metadata={"metavar": "FILE", "help": "the .safetensors file to write"})
    max_examples: int | None = field(default=None, metadata={"help": "use only the first N pairs (default: all)"})
    max_source_length: int = field(default=128, metadata={"help": "in tokens"})
    max_target_length: int = field(default=128, metadata={"help": "in tokens"})
    source_prefix: str | None = field(
        default=None, metadata={"metavar": "TEXT", "help": "text put before every source (T5's task prefix)"}
    )

    # Parameters that control the estimate
    batch_size: int = field(default=16, metadata={"help": "pairs per gradient"})
    device: str | None = field(
        default=None, metadata={"help": "where the model runs: cpu, cuda, cuda:N, mps (default: cuda if available)"}
    )

    def __post_init__(self):
        for flag in ("batch_size", "max_examples", "max_source_length", "max_target_length"):
            value = getattr(self, flag)
            if value is not None and value < 1:
                raise ValueError(f"--{flag}: got {value}; accepted: an integer >= 1")


def estimate_fisher_from_files(settings: FisherSettings) -> str:
    """Estimate and save the Fisher as ``settings`` says; returns the path written."""
    from datasets import Dataset
    from torch.utils.data import DataLoader
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from ...core.fisher import estimate_fisher, save_fisher
    from ...data import make_data_collator, preprocess_pairs
    from ...evaluation.translate import read_lines

    s = settings
    output_dir = os.path.dirname(os.path.abspath(s.output))
    if not os.path.isdir(output_dir):
        raise ValueError(f"--output {s.output}: the directory {output_dir} does not exist")
    sources, targets = read_lines(s.source_file), read_lines(s.target_file)
    if len(sources) != len(targets) or not sources:
        raise ValueError(
            f"--source_file {s.source_file} has {len(sources)} lines and --target_file {s.target_file} has "
            f"{len(targets)}; accepted: the same number of lines, at least one"
        )
    count = min(len(sources), s.max_examples or len(sources))
    device = default_device(s.device)
    warn_if_prefix_missing(s.model_name_or_path, s.source_prefix)
    tokenizer = AutoTokenizer.from_pretrained(s.model_name_or_path)
    model = AutoModelForSeq2SeqLM.from_pretrained(s.model_name_or_path).to(device)
    pairs = Dataset.from_dict({"source": sources[:count], "target": targets[:count]})
    tokenized = preprocess_pairs(pairs, tokenizer, "", "", s.max_source_length, s.max_target_length,
                                 source_prefix=s.source_prefix or "", model_config=model.config)
    loader = DataLoader(tokenized, batch_size=s.batch_size, collate_fn=make_data_collator(tokenizer, model))
    fisher = estimate_fisher(model, loader)
    save_fisher(fisher, s.output, metadata={
        "model": s.model_name_or_path, "examples": count, "batch_size": s.batch_size, "estimator": ESTIMATOR,
    })
    print(f"Fisher of {len(fisher)} parameter tensors on {count} pairs: {s.output}", file=sys.stderr)
    return s.output
