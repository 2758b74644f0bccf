"""The demo's flags and the two presets (the full run, --tiny) that fill the ones left unset."""

import math
import os
import sys
from dataclasses import dataclass, field

from ..terminal.settings import parse_settings

GENERAL_DOMAIN = "cardinal"
NEW_DOMAINS = ("year", "ordinal")

# One place for the defaults; a flag given on the command line wins over its preset.
PRESETS = {
    "full": dict(
        pretrain_steps=2_000,  # 2,000 updates * 64 pairs = 128,000 pairs seen, 2.5 passes over train_size
        finetune_steps=200,  # 200 * 64 = 12,800 pairs, 28 passes over the new domain: enough to forget
        train_size=50_000,
        finetune_train_size=450,  # of the 990 years that do not read as cardinals, 500 are held out
        test_size=500,
        l2sp_lambdas=[0.0, 0.1, 0.3, 1.0, 10.0],
        vocab_size=400,
        model=dict(d_model=128, layers=2, heads=4, ffn_dim=256),  # 0.71M parameters
    ),
    "tiny": dict(
        pretrain_steps=30,
        finetune_steps=6,
        train_size=300,
        finetune_train_size=40,
        test_size=12,
        l2sp_lambdas=[0.0, 10.0],
        vocab_size=120,
        model=dict(d_model=16, layers=1, heads=2, ffn_dim=32),
    ),
}
LEARNING_RATE = 1e-3
BATCH_SIZE = 64
EVAL_BATCH_SIZE = 250
MAX_LENGTH = 64  # tokens; the longest pairs of the three domains have 24 source and 11 target tokens
# The examples and the report translate as far as the scoring does: its generation_max_length counts the decoder
# start token. A model that loops stops there, within the base's MAX_LENGTH positions.
MAX_NEW_TOKENS = MAX_LENGTH - 1


def _preset_help(name: str) -> str:
    def show(value) -> str:
        return " ".join(f"{v:g}" for v in value) if isinstance(value, list) else f"{value:,}"

    return f"; unset: {show(PRESETS['full'][name])}, with --tiny: {show(PRESETS['tiny'][name])}."


@dataclass
class DemoArguments:
    """Flags of ``python -m hf_l2mt.apps.demo``; unset ones take the value of the preset (full or --tiny)."""

    output_dir: str = field(
        default=os.path.join("outputs", "numbers_demo"),
        metadata={"help": "Where the best-balanced fine-tuned model, its tokenizer and demo_results.json go."},
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Replace --output_dir even if it is not a previous demo output."}
    )
    cache_dir: str | None = field(
        default=None,
        metadata={"help": "Where pretrained bases are cached, one folder per settings hash; unset: ~/.cache/hf_l2mt."},
    )
    new_domain: str = field(
        default="year", metadata={"help": "The domain to adapt to.", "choices": list(NEW_DOMAINS)}
    )
    pretrain_steps: int | None = field(
        default=None, metadata={"help": "Updates on cardinals" + _preset_help("pretrain_steps")}
    )
    finetune_steps: int | None = field(
        default=None, metadata={"help": "Updates on the new domain, per lambda" + _preset_help("finetune_steps")}
    )
    l2sp_lambdas: list[float] | None = field(
        default=None,
        metadata={"help": "L2-SP strengths to fine-tune with, one run each" + _preset_help("l2sp_lambdas"),
                  "nargs": "+"},
    )
    seed: int = field(default=0, metadata={"help": "Seed of the data split, the initialisation and the batches."})
    train_size: int | None = field(
        default=None, metadata={"help": "Cardinal training pairs" + _preset_help("train_size")}
    )
    finetune_train_size: int | None = field(
        default=None,
        metadata={"help": "New-domain training pairs" + _preset_help("finetune_train_size")},
    )
    test_size: int | None = field(
        default=None, metadata={"help": "Held-out pairs per domain" + _preset_help("test_size")}
    )
    num_threads: int = field(
        default=1,
        metadata={"help": "CPU threads for torch. The README's table is for one: more threads add up sums in another "
        "order, and this small model's fine-tuning turns that last-bit difference into other numbers."},
    )
    tiny: bool = field(
        default=False, metadata={"help": "A tiny model, few steps and small sets: an end-to-end check in seconds."}
    )

    def __post_init__(self):
        preset = PRESETS["tiny" if self.tiny else "full"]
        for name in ("pretrain_steps", "finetune_steps", "train_size", "finetune_train_size", "test_size"):
            value = preset[name] if getattr(self, name) is None else getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name}: got {value!r}; accepted: an integer >= 1")
            setattr(self, name, value)
        self.l2sp_lambdas = list(preset["l2sp_lambdas"] if self.l2sp_lambdas is None else self.l2sp_lambdas)
        for value in self.l2sp_lambdas:
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"--l2sp_lambdas: got {value!r}; accepted: finite numbers >= 0")
        if len(set(self.l2sp_lambdas)) != len(self.l2sp_lambdas):
            raise ValueError(f"--l2sp_lambdas: got {self.l2sp_lambdas}; accepted: distinct values")
        if self.num_threads < 1:
            raise ValueError(f"--num_threads: got {self.num_threads!r}; accepted: an integer >= 1")
        if self.new_domain not in NEW_DOMAINS:
            raise ValueError(f"--new_domain: got {self.new_domain!r}; accepted: {', '.join(NEW_DOMAINS)}")
        self.cache_dir = self.cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "hf_l2mt")
        self.vocab_size = preset["vocab_size"]
        self.model = dict(preset["model"])


def parse_arguments(argv: list[str] | None) -> DemoArguments:
    """``argv`` (default ``sys.argv[1:]``, ``--config FILE`` among them) as ``DemoArguments``; ``--help`` shows
    the package's first line."""
    description = sys.modules[__package__].__doc__.splitlines()[0]
    (args,) = parse_settings((DemoArguments,), {}, argv, description=description, prog="hf-l2mt demo")
    return args
