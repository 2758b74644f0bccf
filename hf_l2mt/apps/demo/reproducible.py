"""The same arithmetic on every x86-64 machine, so that the demo prints the same table everywhere.

A model this small, fine-tuned for 200 updates at lr 1e-3, amplifies a difference in the last bit of
one update into a different model: the λ = 0.1 run kept 91.4 % of the cardinals on one machine and
58.6 % on another. Four things varied with the machine, each measured by hashing the weights after 30
updates of the demo's model (the same bytes twice in a row under the same settings):

1. torch's own kernels use the widest vector instructions of the CPU (``AVX512`` or ``AVX2``), which
   sum in another order; ``ATEN_CPU_CAPABILITY=avx2`` picks the same code on every x86-64 CPU since 2013;
2. MKL's matrix products pick their code by CPU vendor and model; ``MKL_CBWR=COMPATIBLE`` (MKL's
   "conditional numerical reproducibility") takes the one path that gives the same results on Intel and
   AMD processors;
3. oneDNN, which torch calls for some CPU ops, does the same; ``ONEDNN_MAX_CPU_ISA=AVX2`` caps it;
4. the thread count: two threads split sums differently from one, so the demo trains on one thread
   whatever the machine has (``--num_threads``, default 1), and SentencePiece trains on one thread too.

These libraries read the variables once, when they start: setting them after ``import torch`` changes
nothing (measured: the same bytes as without them). ``pin_arithmetic`` therefore runs before the demo
imports torch; when torch was already imported (the demo called from a program that loaded it), it says
that the table may differ from the README's, and why.
"""

import os
import platform
import sys

PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX2"}
X86_64 = ("x86_64", "amd64")


def pin_arithmetic(say: bool = True) -> dict[str, str]:
    """Set ``PINNED`` in the environment unless the user set those variables; return what is in effect.

    Says on stderr when the demo cannot get the pinned arithmetic: torch already imported (then nothing is
    set), another processor than x86-64, or a variable the user set to another value (kept: it is theirs to
    choose); unless ``say`` is false (a --tiny run has no table to match).
    """
    if platform.machine().lower() not in X86_64:
        if say:
            _note(f"the demo's table was measured on x86-64; on {platform.machine()} the arithmetic differs, so its "
                  "numbers may differ from the README's by more than a point")
        return {}
    if "torch" in sys.modules:
        # Too late for this process; set now, the variables would only reach its child processes, which would
        # then compute otherwise than it does (a test suite that runs the demo in-process, then a training script).
        if say:
            _note("the demo's numbers may differ from the README's by more than a point: torch was imported before "
                  "the demo started, so its kernels were already chosen. Run `hf-l2mt demo` in a fresh shell for "
                  "the README's arithmetic.")
        return {name: os.environ[name] for name in PINNED if name in os.environ}
    problems = []
    for name, value in PINNED.items():
        current = os.environ.setdefault(name, value)
        if current != value:
            problems.append(f"{name}={current} is set (the demo's table is for {name}={value})")
    if problems and say:
        _note("the demo's numbers may differ from the README's by more than a point: " + "; ".join(problems)
              + ". Run `hf-l2mt demo` in a fresh shell for the README's arithmetic.")
    return {name: os.environ[name] for name in PINNED}


def _note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def arithmetic_in_effect() -> dict:
    """What the run computed with, for ``demo_results.json``: compare two runs' tables only when these agree."""
    import torch

    return {
        "machine": platform.machine(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        **{name: os.environ.get(name) for name in PINNED},
    }
