"""Catastrophic forgetting in miniature, and what L2-SP does about it: English → German number words.

    python -m hf_l2mt.apps.demo                                # the full run: about 6 minutes on 2 CPU cores
    python -m hf_l2mt.apps.demo --l2sp_lambdas 0.3 3           # other strengths: about a minute, the base is cached
    python -m hf_l2mt.apps.demo --tiny --output_dir /tmp/demo  # an end-to-end check in seconds

1. data: cardinals ("four hundred and seventy-two" → "vierhundertzweiundsiebzig") are the general
   domain, years ("nineteen eighty-four" → "neunzehnhundertvierundachtzig") the new one; each has a
   held-out test set of numbers never trained on;
2. a SentencePiece tokenizer trained on the cardinals, saved as a MarianTokenizer;
3. a 0.7M-parameter Marian model "pretrained" on cardinals (cached: a second run reuses it);
4. copies of it fine-tuned on years only, once per L2-SP strength λ (λ = 0: plain fine-tuning);
5. every model scored on both test sets; the best-balanced fine-tuned model is saved to --output_dir.

One module per step: ``arguments`` (flags and presets), ``base`` (the cached tokenizer and base),
``finetune``, ``evaluation`` (scores, examples and the table) and ``output`` (the folder it writes);
``run.run`` calls them in order. The task is ``numbers_task`` and its tokenizer ``spm_tokenizer`` (the benchmarks
use both). ``docs/demo.md`` explains the task and shows a run.
"""

import os
import shlex
import sys

from .arguments import parse_arguments
from .reproducible import pin_arithmetic

__all__ = ["main"]


def main(argv: list[str] | None = None) -> dict:
    """Parse ``argv`` (``--help`` and ``--config FILE`` included), then run the demo; torch and transformers are
    imported only after the flags parse, so ``hf-l2mt demo --help`` answers at once, and after the arithmetic is pinned
    (``reproducible``), so the table is the same on every machine."""
    args = parse_arguments(argv)
    pin_arithmetic(say=not args.tiny)  # before torch is imported: its kernels are chosen when it loads
    from .run import run

    command = shlex.join([*launcher(argv), *(sys.argv[1:] if argv is None else argv)])
    return run(args, command)


def launcher(argv: list[str] | None) -> list[str]:
    """The start of the command the user ran, for the report to show: ``argv`` is ``None`` when this package runs
    as ``python -m hf_l2mt.apps.demo``; otherwise ``hf_l2mt.apps.cli`` passed the words after ``demo``, from the
    ``hf-l2mt`` console script or from ``python -m hf_l2mt.apps.cli``."""
    if argv is None:
        return ["python", "-m", "hf_l2mt.apps.demo"]
    if os.path.normpath(sys.argv[0]).split(os.sep)[-2:] == ["cli", "__main__.py"]:  # the cli package run with -m
        return ["python", "-m", "hf_l2mt.apps.cli", "demo"]
    return ["hf-l2mt", "demo"]
