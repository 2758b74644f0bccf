"""Paired bootstrap: sacreBLEU's own test, reproducible with its seed, and the change's interval from the same resamples."""

import os
import random

import numpy as np
import pytest
import sacrebleu
from sacrebleu.metrics import BLEU
from sacrebleu.significance import PairedTest

from hf_l2mt.evaluation.metrics import sacrebleu_metrics
from hf_l2mt.evaluation.significance import _resampled_scores, paired_bootstrap, resample_indices

WORDS = "the house is small a dog barks cat sleeps red green blue big old new tree car sun".split()


def corpus(seed: int, n: int = 60):
    """References, and a baseline and a system that copy a reference with probability 0.3 and 0.6."""
    rng = random.Random(seed)
    references = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))) for _ in range(n)]

    def system(p):
        return [ref if rng.random() < p else " ".join(rng.choice(WORDS) for _ in range(5)) for ref in references]

    return references, system(0.3), system(0.6)


def test_scores_p_values_and_signatures_are_sacrebleus(monkeypatch):
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
    assert result["bleu"]["p_value"] == direct["BLEU"][1].p_value
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
        # sacreBLEU's bootstrap mean of the system's score equals the mean over our resamples: same indices.
        ours = _resampled_scores(metric, system, references, indices)
        assert result[name]["mean"] == pytest.approx(ours.mean(), rel=1e-5)
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
        # sacreBLEU's rule gives 1 / (resamples + 1) when nothing differs; the report does not call that a change.
        assert change["p_value"] == pytest.approx(1 / 101) and not change["significant"]


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
