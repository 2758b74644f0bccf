"""Paired bootstrap resampling of a change in score (Koehn, 2004), on sacreBLEU's own resamples.

``paired_bootstrap`` runs ``sacrebleu.significance.PairedTest(test_type="bs")`` for BLEU, chrF, chrF++ and
TER, for its signatures and each system's bootstrap mean and interval. sacreBLEU gives an interval for each
system's score, not for the change; the change's interval comes from the same resamples: ``PairedTest`` draws
them as ``default_rng(seed).choice(n, (resamples, n))`` (sacreBLEU 2.x, ``significance._paired_bs_test``), and
so does ``resample_indices``. Exact match has no sacreBLEU metric; its change and interval come from those
same indices.

The significance decision and the p-value come from the change's resamples too, so that they cannot
disagree with the interval: a change is significant when its 95 % interval leaves 0 out, and p is the
smallest level at which the interval, taken the same way, would leave 0 out. sacreBLEU's own p-value is
not used: it centres the resampled absolute changes (the Moses script
``bootstrap-hypothesis-difference-significance.pl``), so it can call a change significant whose interval
holds 0, and gives p = 1 / (resamples + 1) to two identical systems.
"""

import contextlib
import math
import os

import numpy as np
from sacrebleu.significance import PairedTest

from .metrics import exact_matches, sacrebleu_metrics
from .report_names import REPORT_SCORE_NAMES

DEFAULT_SEED = 12345  # sacreBLEU's own default (SACREBLEU_SEED)
DEFAULT_RESAMPLES = 1000  # sacreBLEU's default for the paired bootstrap
SIGNIFICANCE_LEVEL = 0.05
CONFIDENCE = 1 - SIGNIFICANCE_LEVEL  # the interval that decides significance


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
    ``ci`` are sacreBLEU's bootstrap mean of the system's score and the half-width of its 95 % interval;
    ``significant`` is true exactly when ``[ci_low, ci_high]`` leaves 0 out (``change_test``).
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
                result.score, column[0].score, change, mean=float(result.mean), ci=float(result.ci)
            )
    matches = {name: exact_matches(hypotheses, references) for name, hypotheses in systems.items()}
    baseline_matches = exact_matches(baseline, references)
    for name, match in matches.items():
        change = 100.0 * (match[indices].mean(axis=1) - baseline_matches[indices].mean(axis=1))
        report[name]["exact_match"] = _change(
            100.0 * match.mean(), 100.0 * baseline_matches.mean(), change,
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


def interval(samples: np.ndarray) -> tuple[float, float]:
    """The 95 % interval of ``samples`` as sacreBLEU's ``estimate_ci`` takes it: drop 1/40 of them at each end."""
    ordered = np.sort(samples)
    lower = len(ordered) // 40
    return float(ordered[lower]), float(ordered[len(ordered) - lower - 1])


def change_test(resampled_changes: np.ndarray) -> dict:
    """The change's interval, p-value and significance, all read from the same resampled changes.

    p is twice the share of resamples on the far side of 0 (0 itself included), at most 1. The interval
    drops ``n // 40`` resamples at each end, so it leaves 0 out exactly when at most ``n // 40`` resamples
    lie on the far side, that is when p <= 2 * (n // 40) / n, which is p <= 0.05 (``n // 40`` and the count are
    integers): the star, the interval and p always agree. Resamples that all change by 0 (identical outputs,
    or a score that is 0 for both) give p = 1: never significant.
    """
    low, high = interval(resampled_changes)
    far_side = min(np.sum(resampled_changes <= 0).item(), np.sum(resampled_changes >= 0).item())
    return {"ci_low": low, "ci_high": high, "p_value": min(1.0, 2 * far_side / len(resampled_changes)),
            "significant": low > 0 or high < 0}


def format_p_value(p_value: float, resamples: int) -> str:
    """p as the terminal table and the page print it: a p of 0 (no resample on the far side of 0) is only known
    to be below the smallest p the resamples can show, 2 / resamples ("< 0.002" at 1,000)."""
    resolution = 2 / resamples
    decimals = max(3, math.ceil(-math.log10(resolution)))
    if p_value == 0:
        return f"< {resolution:.{decimals}f}".rstrip("0")
    return f"{p_value:.{decimals}f}"


def _change(score, baseline, resampled_change, *, mean, ci) -> dict:
    return {
        "score": float(score), "baseline": float(baseline), "change": float(score - baseline),
        **change_test(resampled_change), "mean": mean, "ci": ci,
    }


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
