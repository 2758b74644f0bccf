"""Turning a generator of pairs into an Arrow-backed ``datasets.Dataset``.

Rows go straight to an Arrow file in the ``datasets`` cache (``Dataset.from_generator``), never
into one large Python list, so corpora larger than memory load. The cache key covers the
generator's code, its arguments and the size and modification time of the files it reads, as
``load_dataset`` does for data files: an edited file is read again.
"""

import os

from datasets import Dataset, Features, Value
from datasets.exceptions import DatasetGenerationError
from datasets.fingerprint import Hasher

PAIR_COLUMNS = ("source", "target")
PAIR_FEATURES = Features({"source": Value("string"), "target": Value("string")})
DOMAIN_PAIR_FEATURES = Features({**PAIR_FEATURES, "domain": Value("string")})


def file_stamp(path: str | os.PathLike) -> tuple[str, int, int]:
    stat = os.stat(path)
    return os.path.abspath(path), stat.st_size, stat.st_mtime_ns


def pairs_from_generator(
    generator, gen_kwargs: dict, files, with_domain: bool = False, cache_dir: str | None = None
) -> Dataset:
    """Build the dataset; the generator's own ``ValueError`` reaches the caller unwrapped.

    ``datasets`` wraps any exception raised while generating in ``DatasetGenerationError``;
    the file/line message of the original is what a user needs, so it is re-raised as is.
    """
    features = DOMAIN_PAIR_FEATURES if with_domain else PAIR_FEATURES
    fingerprint = Hasher.hash([generator, gen_kwargs, [file_stamp(path) for path in files], list(features)])
    rows = 0

    def counting(**kwargs):
        nonlocal rows
        for row in generator(**kwargs):
            rows += 1
            yield row

    try:
        return Dataset.from_generator(
            counting, features=features, gen_kwargs=gen_kwargs, cache_dir=cache_dir, fingerprint=fingerprint
        )
    except DatasetGenerationError as error:
        if isinstance(error.__cause__, ValueError):
            raise error.__cause__ from None
        raise
    except ValueError:
        # datasets 5.2 cannot build a split with no rows ("corresponds to no data"); an empty
        # file is still a valid corpus here, and cleaning reports it as empty.
        if rows:
            raise
        return Dataset.from_dict({name: [] for name in features}, features=features)
