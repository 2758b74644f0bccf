"""Errors raised for corpora that cannot be read or that cleaning leaves empty.

All are ``ValueError`` subclasses, so callers that already catch ``ValueError`` for bad input keep
working; each message names the file with its line or byte offset (or the flag) and says what is
accepted.
"""


class DataFormatError(ValueError):
    """A corpus file that cannot be read as sentence pairs."""


class LanguageNotFoundError(DataFormatError):
    """A language code that the corpus does not have."""


class EmptyCorpusError(ValueError):
    """No pair is left, after loading or after cleaning."""


def missing_language(where: str, code: str, available) -> LanguageNotFoundError:
    """The shared wording: ``<where>: language code 'fr' not in this dataset; it has: de, en``."""
    listed = ", ".join(sorted(str(name) for name in available)) or "nothing"
    return LanguageNotFoundError(f"{where}: language code {code!r} not in this dataset; it has: {listed}")
