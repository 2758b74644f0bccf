"""Errors raised for corpora that cannot be read or that cleaning leaves empty.

All are ``ValueError`` subclasses, so callers that already catch ``ValueError`` for bad input keep
working; each message names the file with its line or byte offset (or the flag) and says what is
accepted. Text quoted from a file goes through ``excerpt``, so a message stays a few lines long
whatever the file holds (a 10 MB line is not pasted into it).
"""

_EXCERPT_CHARS = 60
_LISTED_NAMES = 12


class DataFormatError(ValueError):
    """A corpus file that cannot be read as sentence pairs."""


class LanguageNotFoundError(DataFormatError):
    """A language code that the corpus does not have."""


class TruncatedFileError(DataFormatError):
    """A file that ends too early: an interrupted download or copy."""


class SourceUnavailableError(DataFormatError):
    """A source that cannot be reached: a ``hub:`` dataset offline and not cached, a folder without data."""


class EmptyCorpusError(ValueError):
    """No pair is left, after loading or after cleaning."""


def excerpt(text, limit: int = _EXCERPT_CHARS) -> str:
    """``repr`` of ``text`` cut to ``limit`` characters, with the full length when cut."""
    text = str(text)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text):,} characters)"


def listed(names) -> str:
    """Sorted names, each through ``excerpt``, at most ``_LISTED_NAMES`` of them."""
    names = sorted(str(name) for name in names)
    shown = ", ".join(name if len(name) <= _EXCERPT_CHARS else excerpt(name) for name in names[:_LISTED_NAMES])
    more = len(names) - _LISTED_NAMES
    return (shown or "nothing") + (f" and {more} more" if more > 0 else "")


def missing_language(where: str, code: str, available) -> LanguageNotFoundError:
    """The shared wording: ``<where>: language code 'fr' not in this dataset; it has: de, en``."""
    return LanguageNotFoundError(f"{where}: language code {code!r} not in this dataset; it has: {listed(available)}")
