"""Held-out splits: deterministic given the seed, and no held-out source in train."""

import pytest
from datasets import Dataset

from hf_l2mt.data import split_pairs


def corpus(n=60, distinct=40):
    """``n`` pairs over ``distinct`` sources: some sources have two or more targets."""
    return Dataset.from_dict({
        "source": [f"sentence {i % distinct}" for i in range(n)],
        "target": [f"Satz {i}" for i in range(n)],
    })


def pairs(dataset):
    return list(zip(dataset["source"], dataset["target"]))


def test_same_seed_same_split_other_seed_other_split():
    first, again, other = (split_pairs(corpus(), {"validation": 5, "test": 5}, seed=seed) for seed in (0, 0, 1))
    for name in ("train", "validation", "test"):
        assert pairs(first[name]) == pairs(again[name])
    assert pairs(first["test"]) != pairs(other["test"])


def test_held_out_sources_never_reach_train():
    dataset = corpus()
    splits = split_pairs(dataset, {"validation": 5, "test": 5}, seed=3)
    assert list(splits) == ["train", "validation", "test"]
    assert (len(splits["validation"]), len(splits["test"])) == (5, 5)
    train_sources = set(splits["train"]["source"])
    held = list(splits["validation"]["source"]) + list(splits["test"]["source"])
    assert len(set(held)) == 10
    assert not train_sources & set(held)
    # Every pair is in train, or held out, or left out because its source is held out.
    held_pairs = pairs(splits["validation"]) + pairs(splits["test"])
    left_out = [pair for pair in pairs(dataset) if pair[0] in held and pair not in held_pairs]
    assert len(splits["train"]) + 10 + len(left_out) == len(dataset)


def test_fractions_of_distinct_sources():
    splits = split_pairs(corpus(), {"test": 0.25}, seed=0)
    assert len(splits["test"]) == 10


@pytest.mark.parametrize("sizes, message", [
    ({"validation": 30, "test": 11}, "ask for 41 held-out pairs but the corpus has only 40 distinct source sentences"),
    ({"train": 5}, "'train' is not a held-out split name"),
    ({"test": -1}, r"sizes\['test'\]=-1"),
    ({"test": 1.5}, r"sizes\['test'\]=1.5"),
])
def test_bad_sizes(sizes, message):
    with pytest.raises(ValueError, match=message):
        split_pairs(corpus(), sizes)
