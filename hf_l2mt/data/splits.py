"""Held-out splits that never share a source sentence with the training split.

Sources are grouped first: each distinct source is one candidate, so a sentence that occurs
twice (two references, or a duplicate) cannot land in both train and test. The held-out splits
take one pair per chosen source (its first occurrence); every pair whose source was chosen
leaves the training split, and their number is logged. The choice depends only on the order of
the rows and ``seed``.
"""

import hashlib
import logging

import numpy as np
from datasets import Dataset, DatasetDict

logger = logging.getLogger("hf_l2mt")

_BATCH = 10_000


def _source_keys(dataset: Dataset):
    for batch in dataset.select_columns(["source"]).iter(batch_size=_BATCH):
        for source in batch["source"]:
            yield hashlib.blake2b(source.encode(), digest_size=16).digest()


def _resolve_sizes(sizes: dict, distinct: int) -> dict[str, int]:
    counts = {}
    for name, size in sizes.items():
        if not name or name == "train":
            raise ValueError(f"sizes: {name!r} is not a held-out split name; 'train' gets the remaining pairs")
        if isinstance(size, float) and 0 < size < 1:
            counts[name] = round(size * distinct)
        elif isinstance(size, int) and not isinstance(size, bool) and size >= 0:
            counts[name] = size
        else:
            raise ValueError(
                f"sizes[{name!r}]={size!r}: give a number of pairs (int >= 0) or a fraction between 0 and 1"
            )
    if sum(counts.values()) > distinct:
        raise ValueError(
            f"sizes={sizes!r} ask for {sum(counts.values())} held-out pairs but the corpus has only "
            f"{distinct} distinct source sentences"
        )
    return counts


def split_pairs(dataset: Dataset, sizes: dict[str, int | float], seed: int = 0) -> DatasetDict:
    """``DatasetDict`` with ``train`` and one split per entry of ``sizes``.

    ``sizes={"validation": 500, "test": 0.01}``: a count of pairs, or a fraction of the distinct
    sources. Example: ``split_pairs(pairs, {"validation": 1000, "test": 1000}, seed=0)``.
    """
    first_row = {}
    for row, key in enumerate(_source_keys(dataset)):
        first_row.setdefault(key, row)
    counts = _resolve_sizes(sizes, len(first_row))
    candidates = np.fromiter(first_row.values(), dtype=np.int64, count=len(first_row))
    order = np.random.default_rng(seed).permutation(len(candidates))
    held_out, start = {}, 0
    for name, count in counts.items():
        held_out[name] = np.sort(candidates[order[start:start + count]])
        start += count
    held_rows = set(np.concatenate(list(held_out.values())).tolist()) if held_out else set()
    held_keys = {key for key, row in first_row.items() if row in held_rows}
    train = [row for row, key in enumerate(_source_keys(dataset)) if key not in held_keys]
    removed = len(dataset) - len(train) - len(held_rows)
    splits = DatasetDict({"train": dataset.select(train)})
    for name, rows in held_out.items():
        splits[name] = dataset.select(rows)
    logger.info(
        "split %d pairs (%d distinct sources, seed %d): %s; %d more pair(s) left out of train "
        "because their source is held out",
        len(dataset), len(first_row), seed, ", ".join(f"{name} {len(split)}" for name, split in splits.items()),
        removed,
    )
    return splits
