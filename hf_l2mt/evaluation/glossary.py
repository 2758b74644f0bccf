"""Term use: for every sentence whose source contains a glossary term, does the translation use the required
target term?

A glossary is a TSV or CSV file of term pairs (source term, target term) or a TBX file read with
translate-toolkit. Matching is case-insensitive (Unicode case folding, after NFC normalization) and on
whole words: a term matches where it is neither preceded nor followed by a letter, digit or ``_``, and the
words of a multi-word term may be separated by any run of white space. The same rule holds on the target
side, so a German compound that merely contains the required term ("Mietvertrag" for "Vertrag") does not
count as using it. Where matched source terms overlap, the longest one wins ("data protection" rather than
"data"). A source term listed with several target terms (TSV lines that repeat it, or several terms of one
TBX language) is used when the translation contains any of them.
"""

import csv
import os
import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property

TABULAR_SUFFIXES = {".tsv": "\t", ".csv": ","}
TBX_SUFFIX = ".tbx"
ACCEPTED_FORMATS = "a file ending in .tsv or .csv (source term, target term per line) or .tbx"
# A header line of a TSV or CSV glossary, skipped when its two cells are these words (or the languages).
HEADER_WORDS = {("source", "target"), ("src", "tgt"), ("term", "translation")}
NO_TERM_USED = "undefined: no sentence uses a glossary term"
WORD = re.compile(r"\w+")
LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]+)*")
# File suffixes that look like language codes but name the role of a file.
NOT_LANGUAGES = {"txt", "src", "tgt", "ref", "hyp", "out", "tok", "raw"}


class GlossaryError(ValueError):
    """A glossary that cannot be used: empty, a line without a target term, or a TBX without the languages."""


@dataclass(frozen=True)
class Glossary:
    """Source term → the target terms that translate it, read from ``path``."""

    path: str
    terms: dict[str, tuple[str, ...]]
    languages: tuple[str, str] | None = None

    def describe(self) -> dict:
        return {
            "file": self.path,
            "terms": len(self.terms),
            "languages": list(self.languages) if self.languages else None,
            "rule": "case-insensitive, whole words; any listed target term counts",
        }

    @cached_property
    def index(self) -> dict[str | None, list[tuple[str, frozenset, re.Pattern]]]:
        """Each source term with its words and compiled pattern, filed under its first word (``None`` for a term
        without one), so that a sentence is searched only for the terms whose words it has: with thousands of
        terms, trying every pattern on every sentence takes minutes."""
        index: dict[str | None, list[tuple[str, frozenset, re.Pattern]]] = {}
        for term in self.terms:
            normalized = _normalize(term)
            words = WORD.findall(normalized)
            entry = (term, frozenset(words), _term_pattern(normalized))
            index.setdefault(words[0] if words else None, []).append(entry)
        return index


def read_glossary(path: str, src_lang: str | None = None, tgt_lang: str | None = None) -> Glossary:
    """The term pairs of a TSV, CSV or TBX file. ``src_lang`` and ``tgt_lang`` pick two languages of a TBX
    (required when it has more than two); a TSV or CSV holds the source term in its first column."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (*TABULAR_SUFFIXES, TBX_SUFFIX):
        raise GlossaryError(f"--glossary {path}: cannot tell how to read it; accepted: {ACCEPTED_FORMATS}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--glossary {path}: no such file")
    if suffix == TBX_SUFFIX:
        pairs, languages = _tbx_pairs(path, src_lang, tgt_lang)
    else:
        pairs, languages = _tabular_pairs(path, TABULAR_SUFFIXES[suffix], src_lang, tgt_lang), None
    terms: dict[str, list[str]] = {}
    spelling: dict[str, str] = {}  # the first spelling of each source term, by its normalized form
    for source, target in pairs:
        accepted = terms.setdefault(spelling.setdefault(_normalize(source), source), [])
        if target not in accepted:
            accepted.append(target)
    if not terms:
        raise GlossaryError(
            f"--glossary {path}: the file holds no term pairs; accepted: {ACCEPTED_FORMATS}, with at least one pair"
        )
    return Glossary(path, {source: tuple(targets) for source, targets in terms.items()}, languages)


def _tabular_pairs(path: str, delimiter: str, src_lang, tgt_lang) -> list[tuple[str, str]]:
    header = {*HEADER_WORDS, ((src_lang or "").lower(), (tgt_lang or "").lower())}
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle, delimiter=delimiter))
    pairs = []
    for number, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if len(cells) < 2 or not cells[0] or not cells[1]:
            raise GlossaryError(
                f"--glossary {path} line {number}: {row!r} has no {'source' if cells and not cells[0] else 'target'} "
                "term; accepted: source term, target term"
            )
        if number == 1 and (cells[0].lower(), cells[1].lower()) in header:
            continue
        pairs.append((cells[0], cells[1]))
    return pairs


def _tbx_pairs(path: str, src_lang, tgt_lang) -> tuple[list[tuple[str, str]], tuple[str, str]]:
    from translate.misc.xml_helpers import getXMLlang
    from translate.storage.tbx import tbxfile

    with open(path, "rb") as handle:
        units = tbxfile.parsestring(handle.read()).units
    languages = list(dict.fromkeys(getXMLlang(node) for unit in units for node in unit.getlanguageNodes()))
    if src_lang is None and tgt_lang is None and len(languages) == 2:
        src_lang, tgt_lang = languages
    chosen = [_pick_language(languages, lang) for lang in (src_lang, tgt_lang)]
    if None in chosen:
        wanted = f"not both {src_lang} and {tgt_lang}" if src_lang and tgt_lang else "and the pair is not known"
        raise GlossaryError(
            f"--glossary {path}: the TBX has the languages {', '.join(languages) or 'none'}, {wanted}; "
            "accepted: a TBX with both languages of the test sets (named by their file suffixes, e.g. "
            "test.en,test.de), or with exactly two languages"
        )
    pairs = []
    for unit in units:
        targets = [term.text for term in unit.get_target_terms(chosen[1]) if term.text.strip()]
        for source in unit.get_target_terms(chosen[0]):
            pairs += [(source.text.strip(), target.strip()) for target in targets if source.text.strip()]
    return pairs, (chosen[0], chosen[1])


def _pick_language(languages: list[str], wanted: str | None) -> str | None:
    """``wanted`` among ``languages``: the same code (any case, ``_`` or ``-``), else the only one with that
    primary language (``en`` picks ``en-US`` when no other English is there)."""
    if not wanted:
        return None
    key = wanted.lower().replace("_", "-")
    exact = [lang for lang in languages if lang.lower().replace("_", "-") == key]
    regional = [lang for lang in languages if lang.lower().replace("_", "-").split("-")[0] == key.split("-")[0]]
    return (exact or (regional if len(regional) == 1 else [None]))[0]


def languages_of_test_files(test_sets: dict[str, tuple[str, str]]) -> tuple[str | None, str | None]:
    """The language pair that the suffixes of every ``SOURCE_FILE,REFERENCE_FILE`` name (``test.en,test.de``),
    or ``(None, None)`` when a suffix is no language code or the sets disagree."""
    pairs = {
        tuple(os.path.splitext(path)[1].lstrip(".") for path in files) for files in test_sets.values()
    }
    if len(pairs) == 1:
        source, target = pairs.pop()
        codes = [suffix for suffix in (source, target)
                 if LANGUAGE_CODE.fullmatch(suffix) and suffix.split("-")[0].lower() not in NOT_LANGUAGES]
        if len(codes) == 2 and source != target:
            return source, target
    return None, None


def _normalize(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()


def _term_pattern(term: str) -> re.Pattern:
    words = [re.escape(word) for word in term.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)")


def terms_in(sentence: str, glossary: Glossary) -> list[str]:
    """The glossary's source terms found in ``sentence``, in order of appearance, each once; where two found
    terms overlap, only the longer one."""
    text = _normalize(sentence)
    words = set(WORD.findall(text))
    candidates = [entry for word in (*words, None) for entry in glossary.index.get(word, ())]
    found = [
        (match.start(), match.end(), term)
        for term, term_words, pattern in candidates
        if term_words <= words
        for match in pattern.finditer(text)
    ]
    kept: list[tuple[int, int, str]] = []
    for start, end, term in sorted(found, key=lambda span: (span[0] - span[1], span[0], span[2])):
        if all(end <= other_start or start >= other_end for other_start, other_end, _ in kept):
            kept.append((start, end, term))
    return list(dict.fromkeys(term for _, _, term in sorted(kept)))


def uses_term(translation: str, targets: tuple[str, ...]) -> bool:
    """Whether ``translation`` contains any of ``targets`` as whole words, case-insensitively."""
    text = _normalize(translation)
    return any(_term_pattern(_normalize(target)).search(text) for target in targets)


def term_use(sources: list[str], translations: list[str], glossary: Glossary) -> dict:
    """Per model and set: ``hits`` (sentences with a term whose translation uses every required target term),
    ``sentences_with_term``, ``rate`` (hits / sentences_with_term, ``None`` with ``why`` when no sentence has a
    term) and ``missed``: per sentence (``line``, from 1) the terms whose target was not used."""
    hits, with_term, missed = 0, 0, []
    for line, (source, translation) in enumerate(zip(sources, translations, strict=True), start=1):
        required = terms_in(source, glossary)
        if not required:
            continue
        with_term += 1
        absent = [
            {"source": term, "target": list(glossary.terms[term])}
            for term in required
            if not uses_term(translation, glossary.terms[term])
        ]
        if absent:
            missed.append({"line": line, "terms": absent})
        else:
            hits += 1
    if not with_term:
        return {"hits": 0, "sentences_with_term": 0, "rate": None, "why": NO_TERM_USED, "missed": []}
    return {
        "hits": hits, "sentences_with_term": with_term, "rate": hits / with_term,
        "why": "hits / sentences_with_term", "missed": missed,
    }
