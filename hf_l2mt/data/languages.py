"""Language codes: matching a requested code against the codes a corpus uses, and English names.

Codes are compared after lower-casing and turning ``_`` into ``-`` (``en_US`` == ``en-us``). A
code without a region matches any region of that language (``en`` finds ``en-US``), and a code
with a region matches the bare language (``en-US`` finds ``en``); two different regions
(``pt-BR`` and ``pt-PT``) never match, so corpora that keep regions apart stay apart. Two
requested codes must find two different entries: ``en-US`` and ``en`` on a corpus with ``en`` and
``de`` would otherwise read the ``en`` column as both source and target.
"""

from .errors import DataFormatError, excerpt, listed, missing_language

# English names for the T5 task prefix ("translate English to German: "), keyed by ISO 639-1 code.
LANGUAGE_NAMES = {
    "ar": "Arabic", "bg": "Bulgarian", "cs": "Czech", "da": "Danish", "de": "German", "el": "Greek",
    "en": "English", "es": "Spanish", "et": "Estonian", "fi": "Finnish", "fr": "French", "hi": "Hindi",
    "hu": "Hungarian", "it": "Italian", "ja": "Japanese", "ko": "Korean", "lt": "Lithuanian",
    "lv": "Latvian", "nl": "Dutch", "no": "Norwegian", "pl": "Polish", "pt": "Portuguese",
    "ro": "Romanian", "ru": "Russian", "sk": "Slovak", "sl": "Slovenian", "sv": "Swedish",
    "tr": "Turkish", "uk": "Ukrainian", "zh": "Chinese",
}


def normalize_code(code: str) -> str:
    return str(code).strip().replace("_", "-").lower()


def primary_subtag(code: str) -> str:
    return normalize_code(code).split("-", 1)[0]


def match_language(code: str, available, where: str) -> str:
    """The entry of ``available`` that stands for ``code``.

    ``LanguageNotFoundError`` when none does; ``DataFormatError`` when several regions do, or when
    the same code is there twice (``en`` and ``EN``).
    """
    available = list(available)
    wanted = normalize_code(code)
    exact = [name for name in available if normalize_code(name) == wanted]
    if len(exact) > 1:
        raise DataFormatError(
            f"{where}: language code {code!r} is there {len(exact)} times ({', '.join(map(excerpt, exact))}); "
            "keep one, or rename the others"
        )
    if exact:
        return exact[0]
    wanted_primary, wanted_has_region = primary_subtag(wanted), "-" in wanted
    close = [
        name for name in available
        if primary_subtag(name) == wanted_primary and not (wanted_has_region and "-" in normalize_code(name))
    ]
    if len(close) == 1:
        return close[0]
    if len(close) > 1:
        raise DataFormatError(
            f"{where}: language code {code!r} matches several: {', '.join(sorted(close))}; name one of them"
        )
    raise missing_language(where, code, available)


def match_pair(src_lang: str, tgt_lang: str, available, where: str) -> tuple[str, str]:
    """The entries of ``available`` for the source and the target; ``DataFormatError`` if they are one entry."""
    available = list(available)
    src_key, tgt_key = (match_language(code, available, where) for code in (src_lang, tgt_lang))
    if src_key == tgt_key:
        raise DataFormatError(
            f"{where}: src_lang={src_lang!r} and tgt_lang={tgt_lang!r} both match {excerpt(src_key)}, so every "
            f"source would be its own target; it has: {listed(available)}; "
            "give codes that name two of these"
        )
    return src_key, tgt_key


def language_name(code: str) -> str:
    """English name of ``code`` (region ignored: ``en-US`` is English); ``KeyError`` if unknown."""
    return LANGUAGE_NAMES[primary_subtag(code)]
