"""The demo computes the same bytes whatever the machine offers: pinned kernels, one thread, one-thread SentencePiece."""

import hashlib
import os
import platform
import subprocess
import sys

import pytest
import sentencepiece as spm

from benchmarks.demo_table import compare, read_demo_output
from hf_l2mt.apps.demo.reproducible import PINNED

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
x86_64_only = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                 reason="the pinned kernels are x86-64 ones")


def fresh_python(code: str, **env) -> subprocess.CompletedProcess:
    """``code`` in a new interpreter (the kernels are chosen when torch loads), none of PINNED inherited."""
    clean = {k: v for k, v in os.environ.items() if k not in PINNED}
    return subprocess.run([sys.executable, "-c", code], env={**clean, "PYTHONPATH": ROOT, **env},
                          capture_output=True, text=True, check=True, timeout=600)


@x86_64_only
def test_pinning_before_torch_loads_selects_the_avx2_kernels():
    if "avx2" not in open("/proc/cpuinfo", encoding="utf-8").read():
        pytest.skip("this CPU has no AVX2: torch falls back to its default kernels")
    result = fresh_python("from hf_l2mt.apps.demo.reproducible import pin_arithmetic, arithmetic_in_effect\n"
                          "pin_arithmetic()\nprint(arithmetic_in_effect()['cpu_capability'])")
    assert result.stdout.split() == ["AVX2"] and result.stderr == ""


@x86_64_only
def test_a_variable_the_user_set_is_kept_and_named():
    result = fresh_python("from hf_l2mt.apps.demo.reproducible import pin_arithmetic\nprint(pin_arithmetic())",
                          MKL_CBWR="AUTO")
    assert "'MKL_CBWR': 'AUTO'" in result.stdout
    assert "MKL_CBWR=AUTO is set (the demo's table is for MKL_CBWR=COMPATIBLE)" in result.stderr


@x86_64_only
def test_torch_loaded_first_is_said_and_nothing_leaks_to_child_processes():
    """Set after torch loaded, the variables would change only the kernels of child processes, which would then
    compute otherwise than the parent (a resumed run against an uninterrupted one, say)."""
    result = fresh_python("import os, torch\nfrom hf_l2mt.apps.demo.reproducible import PINNED, pin_arithmetic\n"
                          "pin_arithmetic()\nprint(sorted(set(PINNED) & set(os.environ)))")
    assert "torch was imported before the demo started" in result.stderr
    assert result.stdout.split() == ["[]"]


def test_tiny_demo_gives_the_same_weights_with_one_or_two_threads_in_the_environment(tmp_path):
    """Two fresh processes, one told OMP_NUM_THREADS=1 and the other 2: the demo trains on one thread
    whatever the environment says, so tokenizer, base and fine-tuned model are the same bytes."""
    digests = []
    for threads in ("1", "2"):
        out, cache = tmp_path / f"out{threads}", tmp_path / f"cache{threads}"
        fresh_python(f"from hf_l2mt.apps import demo\ndemo.main(['--tiny', '--output_dir', {str(out)!r}, "
                     f"'--cache_dir', {str(cache)!r}])", OMP_NUM_THREADS=threads)
        pieces = spm.SentencePieceProcessor(model_file=str(out / "source.spm"))
        # The .spm file also records the temporary folder it was trained in, so compare its pieces and scores.
        vocabulary = [(pieces.id_to_piece(i), pieces.get_score(i)) for i in range(pieces.get_piece_size())]
        digests.append((vocabulary, hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()))
    assert digests[0] == digests[1]


TABLE = """\
model       cardinals exact  cardinals chrF  years exact  years chrF
base                   98.6            99.9          0.0        41.0
lambda=0                0.0            39.2         98.8        99.9

Best balance (highest mean exact match): lambda=0; saved with its tokenizer to x.
"""


def test_demo_table_check_allows_one_point_and_no_more():
    expected = read_demo_output(TABLE)
    assert compare(expected, read_demo_output(TABLE.replace("98.8", "99.8")), 1.0)[1] == pytest.approx(1.0)
    assert compare(expected, read_demo_output(TABLE.replace("98.8", "99.9")), 1.0)[1] > 1.0
    other_best = TABLE.replace("balance (highest mean exact match): lambda=0", "balance (highest mean exact "
                               "match): base")
    assert compare(expected, read_demo_output(other_best), 1.0)[1] == float("inf")
    with pytest.raises(ValueError, match="no demo table found"):
        read_demo_output("Traceback (most recent call last):\nIndexError: index out of range in self\n")
