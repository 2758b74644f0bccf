"""English → German number words: a translation task a ~1M-parameter model learns in minutes on a CPU.

Each domain is one ``num2words`` phrasing of the integers, so a model can be "pretrained" on one domain
and adapted to another, and forgetting is measured exactly (exact match on held-out numbers):

| domain     | source (``lang="en"``)             | target (``lang="de"``)          | default range  |
|------------|------------------------------------|---------------------------------|----------------|
| cardinal   | four hundred and seventy-two       | vierhundertzweiundsiebzig       | 0 .. 999,999   |
| year       | nineteen eighty-four               | neunzehnhundertvierundachtzig   | 1,100 .. 2,099 |
| ordinal    | four hundred and seventy-second    | vierhundertzweiundsiebzigste    | 0 .. 999,999   |

Both sides are exactly what ``num2words`` 0.5.14 writes, quirks included (``docs/demo.md`` lists them):
British "and" and a comma after the thousands in English; each German target is one word; English
years 2000–2009 read like cardinals ("two thousand and one" → "zweitausendeins").
"""

import random
from collections.abc import Iterator

from datasets import Dataset, DatasetDict, Features, Value
from num2words import num2words

# num2words' ``to=`` argument for each domain.
DOMAINS = {"cardinal": "cardinal", "year": "year", "ordinal": "ordinal"}
DEFAULT_RANGES = {"cardinal": (0, 999_999), "year": (1100, 2099), "ordinal": (0, 999_999)}
SOURCE_LANG, TARGET_LANG = "en", "de"
FEATURES = Features({"number": Value("int64"), "source": Value("string"), "target": Value("string")})


def _check_domain(flag: str, domain: str) -> str:
    if domain not in DOMAINS:
        raise ValueError(f"{flag}: got {domain!r}; accepted: {', '.join(map(repr, DOMAINS))}")
    return DOMAINS[domain]


def make_pair(domain: str, number: int) -> dict[str, str]:
    """``{"source": English words, "target": German words}`` for ``number`` in ``domain``."""
    to = _check_domain("domain", domain)
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise ValueError(f"numbers: got {number!r}; accepted: integers >= 0")
    return {"source": num2words(number, lang=SOURCE_LANG, to=to), "target": num2words(number, lang=TARGET_LANG, to=to)}


def make_pairs(domain: str, numbers) -> list[dict[str, str]]:
    """``make_pair`` for each of ``numbers``, in order."""
    return [make_pair(domain, n) for n in numbers]


def _shuffled(population: range, rng: random.Random) -> Iterator[int]:
    """Lazy Fisher–Yates shuffle: the first k numbers are the same however many are taken, in O(k)."""
    moved: dict[int, int] = {}
    size = len(population)
    for i in range(size):
        j = rng.randrange(i, size)
        yield population[moved.get(j, j)]
        moved[j] = moved.get(i, i)


def draw_numbers(
    domain: str,
    count: int,
    *,
    seed: int,
    low: int | None = None,
    high: int | None = None,
    distinct_from: str | None = None,
) -> list[int]:
    """``count`` distinct integers from ``low..high`` (inclusive; default: the domain's range) in a
    random order fixed by ``(domain, seed)``; a longer draw starts with the shorter one.

    With ``distinct_from``, numbers whose pair reads the same in that domain are left out (years
    2000–2009 are cardinals word for word), so no example of ``domain`` is one of the other domain.
    """
    _check_domain("domain", domain)
    if distinct_from is not None:
        _check_domain("distinct_from", distinct_from)
    default_low, default_high = DEFAULT_RANGES[domain]
    low = default_low if low is None else low
    high = default_high if high is None else high
    if low < 0 or high < low:
        raise ValueError(f"low/high: got {low}..{high}; accepted: 0 <= low <= high")
    drawn = []
    for number in _shuffled(range(low, high + 1), random.Random(f"{domain}-{seed}")):
        if len(drawn) == count:
            break
        if distinct_from is None or make_pair(domain, number) != make_pair(distinct_from, number):
            drawn.append(number)
    if len(drawn) < count:
        left_out = f" that do not read as {distinct_from}s" if distinct_from else ""
        raise ValueError(
            f"{domain}: asked for {count:,} distinct numbers but {low:,}..{high:,} holds only {len(drawn):,}"
            f"{left_out}; ask for fewer (train + held-out sizes) or widen the range"
        )
    return drawn


def numbers_splits(
    domain: str,
    *,
    train_size: int,
    heldout_size: int,
    seed: int = 0,
    low: int | None = None,
    high: int | None = None,
    distinct_from: str | None = None,
) -> DatasetDict:
    """``DatasetDict(train=..., test=...)`` of ``make_pairs`` rows with a ``number`` column.

    The held-out ("test") numbers never appear in "train"; both splits are fixed by ``seed``, and the
    test split does not depend on ``train_size``. ``distinct_from`` is as in ``draw_numbers``.
    """
    for flag, value in (("train_size", train_size), ("heldout_size", heldout_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{flag}: got {value!r}; accepted: an integer >= 0")
    numbers = draw_numbers(
        domain, heldout_size + train_size, seed=seed, low=low, high=high, distinct_from=distinct_from
    )
    splits = {"train": numbers[heldout_size:], "test": numbers[:heldout_size]}
    return DatasetDict({name: pairs_dataset(domain, split) for name, split in splits.items()})


def pairs_dataset(domain: str, numbers: list[int]) -> Dataset:
    """A ``Dataset`` with columns ``number``, ``source``, ``target`` (empty ones keep their columns)."""
    pairs = make_pairs(domain, numbers)
    columns = {"number": numbers, "source": [p["source"] for p in pairs], "target": [p["target"] for p in pairs]}
    return Dataset.from_dict(columns, features=FEATURES)
