"""Token-budget batches: as many pairs per batch as fit in a fixed number of padded positions.

A fixed number of sentences per batch wastes most of its positions on padding when lengths vary
(Ding entries: 70 % of the target positions in a random batch of 64). Marian and fairseq batch by
tokens instead: pairs are sorted by length, cut into batches whose ``pairs × longest`` stays within
the budget, and the batches are shuffled. Here "longest" is the longest of the source and target
sides (``max(len(input_ids), len(labels))``), so neither side is padded much.

Each epoch re-draws the order of equal-length pairs and of the batches from ``seed`` and the epoch,
so a resumed run sees the same batches as an uninterrupted one. The number of batches does not
depend on the epoch: the cut is made on the sorted lengths, which are the same every epoch.
"""

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


def int_list(column) -> list[int]:
    """A dataset column (or any sequence) as a list of ints, read in one go.

    From datasets 4 on, ``dataset[name]`` is a lazy ``Column``: reading it item by item goes back to
    Arrow for each item, which through transformers' ``LengthGroupedSampler`` cost minutes per epoch
    on the Ding pairs (docs/data.md); a full slice reads it in one call.
    """
    return [int(value) for value in column[:]]


def pair_lengths(dataset, length_column: str = "length") -> list[int]:
    """Per pair, the longer side in tokens: the ``length`` column if the dataset has one, else computed."""
    column_names = getattr(dataset, "column_names", None)
    if column_names is not None and length_column in column_names:
        return int_list(dataset[length_column])
    lengths = []
    for index in range(len(dataset)):
        row = dataset[index]
        if "input_ids" not in row:
            raise ValueError(
                f"max_tokens_per_batch: training pair {index} has no 'input_ids' (columns: {sorted(row)}); token-budget "
                "batches need tokenised pairs (hf_l2mt.data.preprocess_pairs)"
            )
        lengths.append(max(len(row["input_ids"]), len(row.get("labels", ()))))
    return lengths


def cut_batches(sorted_lengths: Sequence[int], max_tokens: int) -> list[int]:
    """Sizes of consecutive batches over ascending ``sorted_lengths`` with ``size × longest <= max_tokens``.

    A pair longer than the budget forms a batch of its own.
    """
    sizes, size = [], 0
    for length in sorted_lengths:
        if size and (size + 1) * length > max_tokens:
            sizes.append(size)
            size = 0
        size += 1
    if size:
        sizes.append(size)
    return sizes


class TokenBudgetBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices, each list a batch of at most ``max_tokens`` padded positions."""

    def __init__(self, lengths: Sequence[int], max_tokens: int, seed: int = 0):
        if max_tokens < 1:
            raise ValueError(f"max_tokens_per_batch: got {max_tokens!r}; accepted: an integer >= 1")
        self.lengths = torch.tensor(list(lengths), dtype=torch.long)
        self.max_tokens, self.seed, self.epoch = max_tokens, seed, 0
        self.sizes = cut_batches(sorted(self.lengths.tolist()), max_tokens)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.sizes)

    def batches(self) -> list[list[int]]:
        """This epoch's batches, in the order they are yielded."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        # A random permutation first, then a stable sort by length: equal lengths come in random order.
        permutation = torch.randperm(len(self.lengths), generator=generator)
        order = permutation[torch.sort(self.lengths[permutation], stable=True).indices].tolist()
        batches, start = [], 0
        for size in self.sizes:
            batches.append(order[start:start + size])
            start += size
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())
