"""Load tokenizers without the one warning that tells the user nothing: Marian's sacremoses recommendation."""

import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def without_sacremoses_recommendation() -> Iterator[None]:
    """Silence exactly "Recommended: pip install sacremoses." inside the block; every other warning still shows.

    ``MarianTokenizer`` (transformers 5.24, ``models/marian/tokenization_marian.py``) warns so on every load when
    sacremoses is missing. sacremoses would only give its ``normalize()`` method Moses' punctuation normalisation
    (quotes, dashes, spacing for some languages); tokenization never calls it, so the warning asks for a package
    that changes nothing the toolkit does.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Recommended: pip install sacremoses")
        yield
