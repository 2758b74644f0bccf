"""Translation metrics through sacreBLEU's Python API (offline; ``evaluate.load`` fetches from the Hub).

``score_translations`` returns BLEU, chrF, chrF++ (chrF with word bigrams, ``chrf_pp``) and TER with
their sacreBLEU signatures, plus exact match. ``make_compute_metrics`` adapts it to ``Seq2SeqTrainer(predict_with_generate=True)``; pass
``eval_dataset={"in_domain": ..., "general": ...}`` and the Trainer prefixes each set's scores
(``eval_in_domain_bleu``, ``eval_general_bleu``, ...), so forgetting shows during training.
"""

import json

import numpy as np
from sacrebleu.metrics import BLEU, CHRF, TER

from ..atomic_write import atomic_path
from .report_names import SCORE_NAMES


def sacrebleu_metrics() -> dict:
    """The sacreBLEU metrics behind the scores, by score name; chrF++ is chrF with word bigrams (Popović, 2017)."""
    return {"bleu": BLEU(), "chrf": CHRF(), "chrf_pp": CHRF(word_order=2), "ter": TER()}


def score_translations(hypotheses: list[str], references: list[str]) -> dict:
    """Corpus-level scores of ``hypotheses`` against one reference each.

    Returns ``{"bleu", "chrf", "chrf_pp", "ter", "exact_match", "num_sentences", "signatures": {...}}``;
    exact match is the percentage of hypotheses equal to their reference after stripping spaces
    at both ends.
    """
    if len(hypotheses) != len(references):
        raise ValueError(
            f"score_translations: {len(hypotheses)} hypotheses but {len(references)} references; "
            "each hypothesis needs exactly one reference"
        )
    if not hypotheses:
        raise ValueError("score_translations: no sentences to score")
    metrics = sacrebleu_metrics()
    refs = [list(references)]
    scores = {name: metric.corpus_score(hypotheses, refs).score for name, metric in metrics.items()}
    return {
        **scores,
        "exact_match": float(100.0 * np.mean(exact_matches(hypotheses, references))),
        "num_sentences": len(hypotheses),
        "signatures": {name: str(metric.get_signature()) for name, metric in metrics.items()},
    }


def exact_matches(hypotheses: list[str], references: list[str]) -> np.ndarray:
    """1.0 where a hypothesis equals its reference after stripping spaces at both ends, else 0.0."""
    return np.array([float(h.strip() == r.strip()) for h, r in zip(hypotheses, references)])


def save_scores(scores: dict, path: str) -> str:
    """Write scores with their signatures as JSON (temporary file, then rename)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        json.dump(scores, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    return path


def decode_predictions(tokenizer, token_ids) -> list[str]:
    """Decode generated ids (or references with -100 padding) into stripped strings."""
    token_ids = np.asarray(token_ids)
    token_ids = np.where(token_ids < 0, tokenizer.pad_token_id, token_ids)
    return [text.strip() for text in tokenizer.batch_decode(token_ids, skip_special_tokens=True)]


def make_compute_metrics(tokenizer):
    """``compute_metrics`` for ``Seq2SeqTrainer`` with ``predict_with_generate=True``.

    Returns BLEU, chrF, TER, exact match and the mean generated length (``gen_len``); signatures
    are not numbers, so the Trainer's metrics leave them out: use ``score_translations`` to get them.
    """

    def compute_metrics(eval_prediction) -> dict[str, float]:
        predictions, labels = eval_prediction.predictions, eval_prediction.label_ids
        if isinstance(predictions, tuple):
            predictions = predictions[0]
        hypotheses = decode_predictions(tokenizer, predictions)
        references = decode_predictions(tokenizer, labels)
        scores = score_translations(hypotheses, references)
        lengths = np.count_nonzero(np.asarray(predictions) != tokenizer.pad_token_id, axis=-1)
        return {**{name: round(scores[name], 4) for name in SCORE_NAMES}, "gen_len": float(np.mean(lengths))}

    return compute_metrics
