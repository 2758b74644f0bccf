"""The Ding German–English dictionary, as Debian's ``trans-de-en`` installs it (GPL-2+).

The file is read where it is installed, at run time; it is never copied. Each line is
``German :: English``; ``#`` starts a comment line. Both sides hold the same number of
alternatives separated by `` | ``; the i-th German alternative and the i-th English one make a
pair. A line whose sides have different numbers of alternatives is skipped and counted.

Within an alternative:

* ``;`` separates synonyms. ``synonyms="keep"`` (default) keeps the alternative as one string
  (``"Aalleiter; Aaltreppe"``), as the dictionary lists them; ``"first"`` keeps only the first
  synonym of each side, for word-to-word pairs.
* ``{...}`` is grammar (``{m}``, ``{pl}``, ``{vt}``, ``{adj}``, ``{+Dat.}``, irregular verb forms):
  removed. ``<...>`` holds spellings for search only: removed.
* ``[...]`` is a label. Subject labels (``[med.]``, ``[comp.]``, ``[techn.]``; ``SUBJECT_TAGS``)
  go to the ``domain`` column of the pair, comma-joined in order of appearance over both sides,
  ``""`` when there is none. A label belongs to the alternative it stands in: in
  ``Aachener {adj} | der Aachener Dom | Aachener Printen [cook.]`` only the third pair is ``cook.``. All other labels mark register (``[ugs.]``, ``[coll.]``, ``[fig.]``)
  or region (``[Br.]``, ``[Am.]``, ``[Ös.]``): every ``[...]`` in Ding is such a label, never
  text, so these are removed as well.
* ``(...)`` explains or qualifies (``Aal (auf der Speisekarte)``); it is text and kept, unless
  ``keep_parentheses=False``.
"""

import logging
import os
import re

from datasets import Dataset

from .errors import missing_language
from .records import pairs_from_generator
from .textio import iter_lines

logger = logging.getLogger("hf_l2mt")

DING_PATH = "/usr/share/trans/de-en"

# Ding's subject areas; labels not listed here are register or region labels.
SUBJECT_TAGS = frozenset({
    "adm.", "agr.", "anat.", "arch.", "archeol.", "art", "astrol.", "astron.", "auto", "aviat.",
    "biochem.", "biol.", "bot.", "chem.", "comp.", "constr.", "cook.", "econ.", "electr.", "envir.",
    "fin.", "geogr.", "geol.", "hist.", "insur.", "jur.", "ling.", "lit.", "mach.", "math.", "med.",
    "meteo.", "mil.", "min.", "mus.", "myc.", "naut.", "ornith.", "pharm.", "phil.", "photo.",
    "phys.", "pol.", "print", "psych.", "relig.", "school", "sci.", "soc.", "sport", "statist.",
    "techn.", "telco.", "textil.", "transp.", "zool.",
})
# Spellings found in the 2023 file besides the canonical ones above.
_TAG_SPELLINGS = {
    "tech.": "techn.", "elektr.": "electr.", "elect.": "electr.", "environ.": "envir.",
    "milit.": "mil.", "const.": "constr.",
}

# Patterns start with their bracket (a literal the regex engine can scan for); the space left
# before a removed annotation is folded by ``_tidy``.
_ANNOTATION = re.compile(r"\{[^{}|]*\}|<[^<>|]*>")
_LABEL = re.compile(r"\[([^\[\]]*)\]")
_PARENTHESES = re.compile(r"\([^()]*\)")
_SYNONYM = re.compile(r"\s*;\s*(?![^()]*\))")


def subject_tag(label: str) -> str | None:
    """The canonical subject tag of a label (``"cook"`` → ``"cook."``); ``None`` if not a subject."""
    label = label.strip()
    label = _TAG_SPELLINGS.get(label, label)
    for candidate in (label, label + ".", label.rstrip(".")):
        if candidate in SUBJECT_TAGS:
            return candidate
    return None


def _tidy(text: str) -> str:
    return " ".join(text.split()).replace(" ;", ";").replace(" ,", ",")


def clean_alternative(text: str, keep_parentheses: bool = True) -> tuple[str, list[str]]:
    """``(text without annotations, subject tags)`` of one alternative."""
    tags = []
    if "{" in text or "<" in text:
        text = _ANNOTATION.sub("", text)
    if "[" in text:
        for label in _LABEL.findall(text):
            tag = subject_tag(label)
            if tag and tag not in tags:
                tags.append(tag)
        text = _LABEL.sub("", text)
    if not keep_parentheses and "(" in text:
        text = _PARENTHESES.sub("", text)
    return _tidy(text), tags


def parse_ding_line(line: str, keep_parentheses: bool = True, synonyms: str = "keep"):
    """``[(german, english, domain), ...]``, or ``None`` for a line without aligned alternatives."""
    german, separator, english = _ANNOTATION.sub("", line).partition(" :: ")
    german_alternatives, english_alternatives = german.split(" | "), english.split(" | ")
    if not separator or len(german_alternatives) != len(english_alternatives):
        return None
    pairs = []
    for german_text, english_text in zip(german_alternatives, english_alternatives):
        german_text, german_tags = clean_alternative(german_text, keep_parentheses)
        english_text, english_tags = clean_alternative(english_text, keep_parentheses)
        if synonyms == "first":
            german_text, english_text = _SYNONYM.split(german_text)[0], _SYNONYM.split(english_text)[0]
        domain = ",".join(dict.fromkeys(german_tags + english_tags)) if german_tags or english_tags else ""
        pairs.append((german_text, english_text, domain))
    return pairs


def load_ding(
    path: str = DING_PATH,
    src_lang: str = "de",
    tgt_lang: str = "en",
    domain: str | list[str] | None = None,
    keep_parentheses: bool = True,
    synonyms: str = "keep",
    cache_dir: str | None = None,
) -> Dataset:
    """Pairs with a ``domain`` column from the Ding file (de→en or en→de).

    ``domain=None`` keeps every pair; ``"med."`` (or ``"med"``) keeps pairs tagged ``med.``;
    ``""`` keeps the untagged ones; a list keeps pairs matching any of its entries.
    """
    path = str(path)
    codes = {src_lang, tgt_lang}
    for code in (src_lang, tgt_lang):
        if code not in ("de", "en"):
            raise missing_language(f"Ding dictionary {path}", code, ["de", "en"])
    if codes != {"de", "en"}:
        raise ValueError(f"src_lang={src_lang!r}, tgt_lang={tgt_lang!r}: Ding pairs German with English; use de/en")
    if synonyms not in ("keep", "first"):
        raise ValueError(f"synonyms={synonyms!r}: accepted are 'keep' (whole alternative) and 'first'")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} not found: the Ding dictionary comes with Debian's trans-de-en package "
            "(apt-get install trans-de-en)"
        )
    gen_kwargs = {
        "path": path, "german_source": src_lang == "de", "domains": _domain_selection(domain),
        "keep_parentheses": keep_parentheses, "synonyms": synonyms,
    }
    return pairs_from_generator(_ding_pairs, gen_kwargs, [path], with_domain=True, cache_dir=cache_dir)


def _domain_selection(domain) -> tuple[str, ...] | None:
    if domain is None:
        return None
    wanted = []
    for name in [domain] if isinstance(domain, str) else list(domain):
        tag = "" if name == "" else subject_tag(name)
        if tag is None:
            raise ValueError(
                f"domain={name!r} is not a Ding subject tag; accepted: '' (untagged pairs) or one of "
                f"{', '.join(sorted(SUBJECT_TAGS))}"
            )
        wanted.append(tag)
    return tuple(sorted(set(wanted)))


def _selected(domain: str, domains: tuple[str, ...]) -> bool:
    if not domain:
        return "" in domains
    return any(tag in domains for tag in domain.split(","))


def _ding_pairs(path, german_source, domains, keep_parentheses, synonyms):
    skipped = 0
    for number, line in iter_lines(path):
        if not line.strip() or line.startswith("#"):
            continue
        pairs = parse_ding_line(line, keep_parentheses, synonyms)
        if pairs is None:
            skipped += 1
            logger.debug("%s line %d: alternatives not aligned, skipped", path, number)
            continue
        for german, english, tags in pairs:
            if domains is None or _selected(tags, domains):
                source, target = (german, english) if german_source else (english, german)
                yield {"source": source, "target": target, "domain": tags}
    logger.info("%s: skipped %d line(s) whose German and English sides have different numbers of alternatives",
                path, skipped)
