"""The number-words task: real num2words output, deterministic held-out splits that never leak."""

import pytest

from hf_l2mt.apps.demo.numbers_task import draw_numbers, make_pair, make_pairs, numbers_splits


@pytest.mark.parametrize(
    ("domain", "number", "source", "target"),
    [
        ("cardinal", 472, "four hundred and seventy-two", "vierhundertzweiundsiebzig"),
        ("cardinal", 0, "zero", "null"),
        ("cardinal", 1984, "one thousand, nine hundred and eighty-four", "eintausendneunhundertvierundachtzig"),
        ("cardinal", 21_000, "twenty-one thousand", "einundzwanzigtausend"),
        # num2words 0.5.14 writes "eins" inside "...einstausend"; the task keeps its output as it is.
        (
            "cardinal",
            101_101,
            "one hundred and one thousand, one hundred and one",
            "einhunderteinstausendeinhunderteins",
        ),
        ("year", 1984, "nineteen eighty-four", "neunzehnhundertvierundachtzig"),
        ("year", 1505, "fifteen oh-five", "fünfzehnhundertfünf"),
        ("year", 1900, "nineteen hundred", "neunzehnhundert"),
        ("year", 2001, "two thousand and one", "zweitausendeins"),
        ("year", 2024, "twenty twenty-four", "zweitausendvierundzwanzig"),
        ("ordinal", 472, "four hundred and seventy-second", "vierhundertzweiundsiebzigste"),
        ("ordinal", 1, "first", "erste"),
    ],
)
def test_pairs_are_num2words_output(domain, number, source, target):
    assert make_pair(domain, number) == {"source": source, "target": target}


def test_make_pairs_keeps_order_and_rejects_bad_input():
    assert [p["target"] for p in make_pairs("cardinal", [3, 1, 2])] == ["drei", "eins", "zwei"]
    with pytest.raises(ValueError, match="domain: got 'fraction'; accepted: 'cardinal', 'year', 'ordinal'"):
        make_pairs("fraction", [1])
    with pytest.raises(ValueError, match=r"numbers: got -5; accepted: integers >= 0"):
        make_pairs("cardinal", [1, -5])


def test_splits_are_deterministic_by_seed():
    first = numbers_splits("cardinal", train_size=40, heldout_size=10, seed=3)
    again = numbers_splits("cardinal", train_size=40, heldout_size=10, seed=3)
    other = numbers_splits("cardinal", train_size=40, heldout_size=10, seed=4)
    for split in ("train", "test"):
        assert first[split].to_list() == again[split].to_list()
    assert first["test"]["number"] != other["test"]["number"]


def test_heldout_numbers_never_appear_in_train():
    splits = numbers_splits("year", train_size=400, heldout_size=500, seed=0)
    train, test = set(splits["train"]["number"]), set(splits["test"]["number"])
    assert len(train) == 400 and len(test) == 500
    assert not train & test
    assert not set(splits["train"]["source"]) & set(splits["test"]["source"])
    assert all(1100 <= n <= 2099 for n in train | test)


def test_heldout_set_does_not_depend_on_train_size():
    small = numbers_splits("year", train_size=5, heldout_size=20, seed=1)
    large = numbers_splits("year", train_size=900, heldout_size=20, seed=1)
    assert small["test"]["number"] == large["test"]["number"]
    assert small["train"]["number"] == large["train"]["number"][:5]


def test_draw_is_a_prefix_of_any_longer_draw():
    # random.sample switches algorithm with the sample size; the lazy shuffle must not.
    assert draw_numbers("year", 10, seed=0) == draw_numbers("year", 1000, seed=0)[:10]
    assert sorted(draw_numbers("cardinal", 11, seed=0, low=5, high=15)) == list(range(5, 16))


def test_distinct_from_leaves_out_years_that_read_as_cardinals():
    splits = numbers_splits("year", train_size=490, heldout_size=500, seed=0, distinct_from="cardinal")
    numbers = set(splits["train"]["number"]) | set(splits["test"]["number"])
    assert numbers == set(range(1100, 2100)) - set(range(2000, 2010))
    for row in splits["test"]:
        assert (row["source"], row["target"]) != tuple(make_pair("cardinal", row["number"]).values())
    with pytest.raises(ValueError, match=r"asked for 991 distinct numbers but 1,100..2,099 holds only 990"):
        numbers_splits("year", train_size=491, heldout_size=500, seed=0, distinct_from="cardinal")


def test_bad_sizes_and_ranges_are_rejected():
    with pytest.raises(ValueError, match="train_size: got -1; accepted: an integer >= 0"):
        numbers_splits("cardinal", train_size=-1, heldout_size=1)
    with pytest.raises(ValueError, match="low/high: got 10..5"):
        numbers_splits("cardinal", train_size=1, heldout_size=1, low=10, high=5)
    with pytest.raises(ValueError, match="holds only 6"):
        numbers_splits("cardinal", train_size=5, heldout_size=2, low=0, high=5)


def test_empty_split_keeps_its_columns():
    splits = numbers_splits("cardinal", train_size=0, heldout_size=3)
    assert splits["train"].column_names == ["number", "source", "target"]
    assert len(splits["train"]) == 0 and len(splits["test"]) == 3
