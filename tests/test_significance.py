"""Paired bootstrap: sacreBLEU's own test, reproducible with its seed, and the change's interval from the same resamples."""

import os
import random

import numpy as np
import pytest
import sacrebleu
from sacrebleu.metrics import BLEU
from sacrebleu.significance import PairedTest

from hf_l2mt.evaluation.metrics import sacrebleu_metrics
from hf_l2mt.evaluation.significance import (
    DEFAULT_SEED,
    _resampled_scores,
    format_p_value,
    paired_bootstrap,
    resample_indices,
)

WORDS = "the house is small a dog barks cat sleeps red green blue big old new tree car sun".split()


def corpus(seed: int, n: int = 60):
    """References, and a baseline and a system that copy a reference with probability 0.3 and 0.6."""
    rng = random.Random(seed)
    references = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))) for _ in range(n)]

    def system(p):
        return [ref if rng.random() < p else " ".join(rng.choice(WORDS) for _ in range(5)) for ref in references]

    return references, system(0.3), system(0.6)


def test_scores_means_and_signatures_are_sacrebleus(monkeypatch):
    references, baseline, system = corpus(0)
    result = paired_bootstrap(baseline, {"run": system}, references, seed=7, resamples=200)["systems"]["run"]

    assert result["bleu"]["score"] == pytest.approx(sacrebleu.corpus_bleu(system, [references]).score)
    assert result["bleu"]["baseline"] == pytest.approx(sacrebleu.corpus_bleu(baseline, [references]).score)
    assert result["chrf_pp"]["score"] == pytest.approx(sacrebleu.corpus_chrf(system, [references], word_order=2).score)
    assert result["ter"]["change"] == pytest.approx(
        sacrebleu.corpus_ter(system, [references]).score - sacrebleu.corpus_ter(baseline, [references]).score
    )
    monkeypatch.setenv("SACREBLEU_SEED", "7")
    _, direct = PairedTest([("b", baseline), ("s", system)], {"bleu": BLEU()}, [references], test_type="bs",
                           n_samples=200)()
    assert result["bleu"]["mean"] == pytest.approx(direct["BLEU"][1].mean)
    assert result["bleu"]["ci"] == pytest.approx(direct["BLEU"][1].ci)


def test_seed_env_is_restored(monkeypatch):
    monkeypatch.setenv("SACREBLEU_SEED", "99")
    references, baseline, system = corpus(1, n=20)
    paired_bootstrap(baseline, {"run": system}, references, seed=5, resamples=50)
    assert os.environ["SACREBLEU_SEED"] == "99"


def test_change_interval_comes_from_the_same_resamples_as_sacrebleus_test():
    references, baseline, system = corpus(2)
    result = paired_bootstrap(baseline, {"run": system}, references, seed=11, resamples=300)["systems"]["run"]
    indices = resample_indices(len(references), 11, 300)
    for name, metric in sacrebleu_metrics().items():
        # sacreBLEU's bootstrap mean of the system's score equals the mean over our resamples: same indices, so the
        # same 300 scores (float32 for chrF and TER), but sacreBLEU sorts them before its mean. numpy sums float32
        # pairwise: each score passes through at most 128 / 8 = 16 additions in its block's partial sum, 3 joining
        # the 8 partial sums and ⌈log2(300 / 128)⌉ = 2 joining blocks, 21 roundings of u relative to the sum (the
        # scores are ≥ 0), plus the division: 2 · 22 u = 2.6e-6 between the two orders. Other resamples move the
        # mean by about a score's spread / √300, 0.4 %.
        ours = _resampled_scores(metric, system, references, indices)
        assert result[name]["mean"] == pytest.approx(ours.mean(), rel=3e-6)
        assert result[name]["ci_low"] <= result[name]["change"] <= result[name]["ci_high"]


def test_bootstrap_is_reproducible_with_its_seed():
    references, baseline, system = corpus(3)
    first = paired_bootstrap(baseline, {"run": system}, references, seed=42, resamples=200)
    again = paired_bootstrap(baseline, {"run": system}, references, seed=42, resamples=200)
    other = paired_bootstrap(baseline, {"run": system}, references, seed=43, resamples=200)

    assert first == again
    assert first["signatures"]["bleu"].startswith("nrefs:1|bs:200|seed:42|")
    intervals = [(r["ci_low"], r["ci_high"]) for r in first["systems"]["run"].values()]
    assert intervals != [(r["ci_low"], r["ci_high"]) for r in other["systems"]["run"].values()]


def test_a_system_against_itself_has_no_change_and_is_not_significant():
    references, baseline, _ = corpus(4)
    result = paired_bootstrap(baseline, {"same": list(baseline)}, references, seed=1, resamples=100)["systems"]["same"]
    for change in result.values():
        assert (change["change"], change["ci_low"], change["ci_high"]) == (0.0, 0.0, 0.0)
        # Every resample changes by exactly 0: no evidence of a change at all (sacreBLEU's rule says 1 / 101).
        assert change["p_value"] == 1.0 and not change["significant"]


def test_a_score_that_is_zero_for_both_systems_is_never_significant():
    references = [f"{a}{b}" for a in WORDS[:6] for b in WORDS[6:12]]  # one word each: BLEU has no 4-gram to match
    baseline = ["car"] * len(references)
    system = references[:18] + baseline[18:]
    result = paired_bootstrap(baseline, {"run": system}, references, seed=2, resamples=1000)["systems"]["run"]
    assert (result["bleu"]["score"], result["bleu"]["baseline"]) == (0.0, 0.0)
    assert (result["bleu"]["p_value"], result["bleu"]["significant"]) == (1.0, False)
    assert result["exact_match"]["significant"]  # the same outputs do differ where a score can see it


def far_side_p(changes: np.ndarray) -> float:
    return min(1.0, 2 * min(np.sum(changes <= 0), np.sum(changes >= 0)) / len(changes))


@pytest.mark.parametrize("resamples", [40, 200, 1000, 1001, 1039, 1040])
def test_the_star_is_the_interval_leaving_zero_out_and_p_agrees(resamples):
    references, baseline, system = corpus(7, n=30)
    noisy = [ref if i % 3 else hyp for i, (ref, hyp) in enumerate(zip(references, baseline))]
    result = paired_bootstrap(baseline, {"run": system, "noisy": noisy}, references, seed=5, resamples=resamples)
    indices = resample_indices(len(references), 5, resamples)
    seen = set()
    for name, hypotheses in (("run", system), ("noisy", noisy)):
        for metric_name, metric in sacrebleu_metrics().items():
            change = result["systems"][name][metric_name]
            resampled = (_resampled_scores(metric, hypotheses, references, indices)
                         - _resampled_scores(metric, baseline, references, indices))
            assert change["p_value"] == far_side_p(resampled)
            leaves_zero_out = change["ci_low"] > 0 or change["ci_high"] < 0
            assert change["significant"] == leaves_zero_out == (change["p_value"] <= 0.05)
            seen.add(change["significant"])
    assert seen == {True, False}, "the case must hold significant and non-significant changes"


def test_an_interval_from_zero_is_not_significant():
    # 3 of 60 sentences fixed, nothing else changed: about (57/60) ** 60 = 5 % of the resamples draw none of them.
    references = [f"w{i}" for i in range(60)]
    baseline = ["x"] * 3 + references[3:]
    exact = paired_bootstrap(baseline, {"run": references}, references, resamples=1000)["systems"]["run"]["exact_match"]
    assert exact["change"] == 5.0 and exact["ci_low"] == 0.0
    assert not exact["significant"] and exact["p_value"] > 0.05
    # sacreBLEU's (Moses's) rule, on the same resamples, calls this change significant:
    changes = 100.0 * (resample_indices(60, DEFAULT_SEED, 1000) < 3).mean(axis=1)
    absolute = np.abs(changes)
    assert (np.sum(absolute - absolute.mean() > exact["change"]) + 1) / 1001 < 0.05


@pytest.mark.parametrize("p_value, resamples, shown", [
    (0.0, 1000, "< 0.002"), (0.046, 1000, "0.046"), (1.0, 1000, "1.000"), (0.0, 200, "< 0.01"),
    (0.0, 10000, "< 0.0002"), (0.0124, 10000, "0.0124"),
])
def test_p_is_shown_at_the_resolution_of_the_resamples(p_value, resamples, shown):
    assert format_p_value(p_value, resamples) == shown


def test_exact_match_change_uses_sentence_matches():
    references = [f"{a} {b}" for a in WORDS[:5] for b in WORDS[5:11]]  # 30 distinct sentences
    baseline = ["car"] * len(references)
    system = references[:15] + baseline[15:]  # half right, against none
    result = paired_bootstrap(baseline, {"run": system}, references, seed=3, resamples=400)["systems"]["run"]
    exact = result["exact_match"]

    assert (exact["score"], exact["baseline"], exact["change"]) == (50.0, 0.0, 50.0)
    indices = resample_indices(len(references), 3, 400)
    resampled = 100.0 * (indices < 15).mean(axis=1)
    ordered = np.sort(resampled)
    assert (exact["ci_low"], exact["ci_high"]) == (ordered[10], ordered[389])
    assert exact["significant"]


@pytest.mark.parametrize("seed, resamples, message", [
    (0, 100, "--bootstrap_seed: got 0; accepted: an integer >= 1 (sacreBLEU reads 0 as no seed)"),
    (5, 10, "--bootstrap_resamples: got 10; accepted: an integer >= 40"),
])
def test_bad_settings_name_the_flag(seed, resamples, message):
    references, baseline, system = corpus(5, n=5)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        paired_bootstrap(baseline, {"run": system}, references, seed=seed, resamples=resamples)


def test_translations_of_another_length_are_refused():
    references, baseline, system = corpus(6, n=6)
    with pytest.raises(ValueError, match="'run' has 5 translations, the baseline 6 and the references 6"):
        paired_bootstrap(baseline, {"run": system[:5]}, references)
