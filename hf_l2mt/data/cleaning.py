"""Cleaning sentence pairs, with every dropped pair counted by reason and logged.

Filters, in this order (a pair is counted under the first one that drops it):

1. whitespace: runs of Unicode whitespace (tabs, newlines, no-break spaces) become one space,
   and both ends are stripped; this changes text, it drops nothing;
2. ``empty``: the source or the target is empty;
3. ``too_long``: a side is longer than ``max_length`` characters (``length_unit="chars"``,
   the default: it also works for languages written without spaces) or whitespace-separated
   words (``"words"``);
4. ``length_ratio``: the longer side is more than ``max_length_ratio`` times the shorter one,
   in the same unit; 9, as in Moses' ``clean-corpus-n.perl``, drops misalignments, not
   translations between languages of different verbosity;
5. ``duplicate``: the same (source, target) pair was already kept.
"""

import hashlib
import logging
from dataclasses import dataclass, field

import pyarrow.compute as pc
from datasets import Dataset

from .errors import EmptyCorpusError

logger = logging.getLogger("hf_l2mt")

DROP_REASONS = ("empty", "too_long", "length_ratio", "duplicate")
LENGTH_UNITS = ("chars", "words")


@dataclass
class CleaningReport:
    """What cleaning did: pairs in, pairs kept, pairs dropped per reason (zeros included)."""

    total: int
    kept: int
    dropped: dict[str, int] = field(default_factory=dict)
    name: str = "corpus"

    def summary(self) -> str:
        return ", ".join(f"{reason}={count}" for reason, count in self.dropped.items())

    def __str__(self) -> str:
        width = max(len(str(self.total)), 1)
        lines = [f"cleaning {self.name}: {self.total} pairs in, {self.kept} kept"]
        for reason, count in self.dropped.items():
            share = 100.0 * count / self.total if self.total else 0.0
            lines.append(f"  dropped {reason:<12} {count:>{width}} ({share:.1f}%)")
        return "\n".join(lines)


def normalize_whitespace(text: str) -> str:
    return " ".join(text.split())


def _length(text: str, unit: str) -> int:
    return len(text) if unit == "chars" else len(text.split())


def _check_flags(max_length, length_unit, max_length_ratio) -> None:
    if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
        raise ValueError(f"max_length={max_length!r}: give a positive integer, or None for no limit")
    if length_unit not in LENGTH_UNITS:
        raise ValueError(f"length_unit={length_unit!r}: accepted are {', '.join(LENGTH_UNITS)}")
    if max_length_ratio is not None and not max_length_ratio >= 1:
        raise ValueError(f"max_length_ratio={max_length_ratio!r}: give a number >= 1, or None for no limit")


def clean_pairs(
    dataset: Dataset,
    max_length: int | None = 1024,
    length_unit: str = "chars",
    max_length_ratio: float | None = 9.0,
    dedupe: bool = True,
    name: str = "corpus",
) -> tuple[Dataset, CleaningReport]:
    """Cleaned ``dataset`` (other columns such as ``domain`` kept) and its ``CleaningReport``.

    Raises ``EmptyCorpusError`` naming the filters that dropped how many when nothing is left.
    """
    _check_flags(max_length, length_unit, max_length_ratio)
    seen = set()

    def mark(batch):
        sources = [normalize_whitespace(text or "") for text in batch["source"]]
        targets = [normalize_whitespace(text or "") for text in batch["target"]]
        reasons = []
        for source, target in zip(sources, targets):
            reason = ""
            if not source or not target:
                reason = "empty"
            else:
                lengths = (_length(source, length_unit), _length(target, length_unit))
                if max_length is not None and max(lengths) > max_length:
                    reason = "too_long"
                elif max_length_ratio is not None and max(lengths) > max_length_ratio * max(min(lengths), 1):
                    reason = "length_ratio"
                elif dedupe:
                    key = hashlib.blake2b(f"{source}\0{target}".encode(), digest_size=16).digest()
                    reason = "duplicate" if key in seen else ""
                    seen.add(key)
            reasons.append(reason)
        return {"source": sources, "target": targets, "_drop": reasons}

    marked = dataset.map(mark, batched=True, desc="Cleaning pairs")
    counts = {}
    # datasets does not call ``mark`` on a dataset without rows, which then has no ``_drop`` column.
    if len(marked):
        counts = {row["values"]: row["counts"] for row in pc.value_counts(marked.data.column("_drop")).to_pylist()}
    report = CleaningReport(
        total=len(dataset), kept=counts.get("", 0),
        dropped={reason: counts.get(reason, 0) for reason in DROP_REASONS}, name=name,
    )
    logger.info("%s", report)
    if report.kept == 0:
        raise EmptyCorpusError(
            f"{name}: no pair left after cleaning ({report.total} pairs in; dropped {report.summary()}; "
            f"max_length={max_length} {length_unit}, max_length_ratio={max_length_ratio}); "
            "relax these flags, or check the file, its columns and the language codes"
        )
    kept = marked.filter(lambda drops: [drop == "" for drop in drops], input_columns="_drop", batched=True)
    return kept.remove_columns("_drop"), report
