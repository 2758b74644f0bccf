"""Paired bootstrap resampling of a change in score, through sacreBLEU's own test.

``paired_bootstrap`` runs ``sacrebleu.significance.PairedTest(test_type="bs")`` (Koehn, 2004; the Moses
script ``bootstrap-hypothesis-difference-significance.pl``) for BLEU, chrF, chrF++ and TER: its p-value
says how likely a change this large is when the two systems are equally good. sacreBLEU gives a
confidence interval for each system's score, not for the change; the interval of the change comes
from the same resamples: ``PairedTest`` draws them as ``default_rng(seed).choice(n, (resamples, n))``
(sacreBLEU 2.x, ``significance._paired_bs_test``), and so does ``resample_indices``. Exact match has no
sacreBLEU metric; its change, interval and p-value come from those same indices and sacreBLEU's
p-value rule.
"""

import contextlib
import os

import numpy as np
from sacrebleu.significance import PairedTest

from .metrics import REPORT_SCORE_NAMES, exact_matches, sacrebleu_metrics

DEFAULT_SEED = 12345  # sacreBLEU's own default (SACREBLEU_SEED)
DEFAULT_RESAMPLES = 1000  # sacreBLEU's default for the paired bootstrap
SIGNIFICANCE_LEVEL = 0.05
CONFIDENCE = 0.95


def check_bootstrap_settings(seed: int, resamples: int) -> None:
    """Errors naming the flag. sacreBLEU turns seed 0 into "no seed" (``self._seed if self._seed else None``
    in ``PairedTest.__call__``), so 0 would not be reproducible."""
    if not isinstance(seed, int) or seed < 1:
        raise ValueError(f"--bootstrap_seed: got {seed!r}; accepted: an integer >= 1 (sacreBLEU reads 0 as no seed)")
    if not isinstance(resamples, int) or resamples < 40:
        raise ValueError(
            f"--bootstrap_resamples: got {resamples!r}; accepted: an integer >= 40 (a 95 % interval drops the "
            "lowest and highest 1/40 of the resamples)"
        )


def resample_indices(num_sentences: int, seed: int, resamples: int) -> np.ndarray:
    """The sentence indices of each resample, ``(resamples, num_sentences)``, drawn as ``PairedTest`` draws them."""
    return np.random.default_rng(seed).choice(num_sentences, size=(resamples, num_sentences), replace=True)


def paired_bootstrap(
    baseline: list[str],
    systems: dict[str, list[str]],
    references: list[str],
    *,
    seed: int = DEFAULT_SEED,
    resamples: int = DEFAULT_RESAMPLES,
) -> dict:
    """Each system's change against ``baseline`` on every score, with a 95 % interval and a p-value.

    Returns ``{"seed", "resamples", "signatures": {metric: str}, "systems": {name: {metric: {"score",
    "baseline", "change", "ci_low", "ci_high", "p_value", "significant", "mean", "ci"}}}}``; ``mean`` and
    ``ci`` are sacreBLEU's bootstrap mean of the system's score and the half-width of its 95 % interval.
    """
    check_bootstrap_settings(seed, resamples)
    for name, hypotheses in systems.items():
        if len(hypotheses) != len(references) or len(baseline) != len(references):
            raise ValueError(
                f"paired_bootstrap: {name!r} has {len(hypotheses)} translations, the baseline {len(baseline)} and "
                f"the references {len(references)}; accepted: the same number"
            )
    metrics = sacrebleu_metrics()
    with _sacrebleu_seed(seed):
        test = PairedTest(
            [("baseline", baseline), *systems.items()], metrics, [list(references)], test_type="bs",
            n_samples=resamples,
        )
        signatures, results = test()
    # PairedTest keys its results by each score's display name ("chrF2++"), in the order of `metrics`.
    by_name = dict(zip(metrics, [key for key in results if key != "System"]))
    indices = resample_indices(len(references), seed, resamples)
    report = {name: {} for name in systems}
    for metric_name, metric in metrics.items():
        column = results[by_name[metric_name]]
        resampled_baseline = _resampled_scores(metric, baseline, references, indices)
        for position, name in enumerate(systems, start=1):
            result = column[position]
            change = _resampled_scores(metric, systems[name], references, indices) - resampled_baseline
            report[name][metric_name] = _change(
                result.score, column[0].score, change, result.p_value, mean=float(result.mean), ci=float(result.ci)
            )
    matches = {name: exact_matches(hypotheses, references) for name, hypotheses in systems.items()}
    baseline_matches = exact_matches(baseline, references)
    for name, match in matches.items():
        change = 100.0 * (match[indices].mean(axis=1) - baseline_matches[indices].mean(axis=1))
        observed = 100.0 * (match.mean() - baseline_matches.mean())
        report[name]["exact_match"] = _change(
            100.0 * match.mean(), 100.0 * baseline_matches.mean(), change, bootstrap_p_value(change, observed),
            mean=float(100.0 * match[indices].mean()), ci=None,
        )
    return {
        "method": "paired bootstrap resampling (sacrebleu.significance.PairedTest, test_type='bs')",
        "seed": seed,
        "resamples": resamples,
        "confidence": CONFIDENCE,
        "signatures": {metric: str(signatures[by_name[metric]]) for metric in metrics},
        "systems": {name: {metric: report[name][metric] for metric in REPORT_SCORE_NAMES} for name in systems},
    }


def bootstrap_p_value(resampled_changes: np.ndarray, observed_change: float) -> float:
    """sacreBLEU's paired-bootstrap p-value (``_paired_bs_test``): how often a resampled absolute change,
    centred on its mean, exceeds the observed one; ``+1`` on both sides keeps it above zero."""
    absolute = np.abs(resampled_changes)
    exceed = np.sum(absolute - absolute.mean() > abs(observed_change)).item()
    return (exceed + 1) / (len(resampled_changes) + 1)


def interval(samples: np.ndarray) -> tuple[float, float]:
    """The 95 % interval of ``samples`` as sacreBLEU's ``estimate_ci`` takes it: drop 1/40 of them at each end."""
    ordered = np.sort(samples)
    lower = len(ordered) // 40
    return float(ordered[lower]), float(ordered[len(ordered) - lower - 1])


def _change(score, baseline, resampled_change, p_value, *, mean, ci) -> dict:
    low, high = interval(resampled_change)
    change = float(score - baseline)
    return {
        "score": float(score), "baseline": float(baseline), "change": change,
        "ci_low": low, "ci_high": high, "p_value": float(p_value), "significant": is_significant(change, p_value),
        "mean": mean, "ci": ci,
    }


def is_significant(change: float, p_value: float) -> bool:
    """p below the level, and a change at all: for identical outputs every resampled change is 0 and sacreBLEU's
    rule still gives p = 1 / (resamples + 1) (nothing exceeds 0, plus one), which is not evidence of a change."""
    return change != 0.0 and p_value < SIGNIFICANCE_LEVEL


def _resampled_scores(metric, hypotheses, references, indices) -> np.ndarray:
    # The sufficient statistics and the score-from-statistics step are the ones PairedTest itself uses.
    stats = np.array(metric._extract_corpus_statistics(hypotheses, [list(references)]), dtype="float32")
    return np.array([metric._compute_score_from_stats(sample.sum(0)).score for sample in stats[indices]])


@contextlib.contextmanager
def _sacrebleu_seed(seed: int):
    """``PairedTest`` reads its seed from ``SACREBLEU_SEED`` only; set it for the test, then put it back."""
    previous = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("SACREBLEU_SEED", None)
        else:
            os.environ["SACREBLEU_SEED"] = previous
