"""Translation memories: TMX 1.4 and gettext PO / MO catalogues.

TMX is streamed with lxml's ``iterparse`` (each ``<tu>`` is freed once read), so memories of
several gigabytes load in constant memory. Languages are chosen by each ``<tuv>``'s ``xml:lang``
(``lang`` in TMX 1.1) with region tolerance (``en`` finds ``en-US``; see ``languages``).
Inline markup codes (``bpt``, ``ept``, ``ph``, ``it``, ``ut``) hold the original document's
formatting, not text, so their content is left out and the text around them kept. Entities that
the file declares in its internal DTD subset are expanded within bounds, external ones never read
(``entities``).

PO and MO are read with polib. ``msgid`` is the source and ``msgstr`` the target; when the
catalogue's ``Language`` header names ``src_lang`` instead of ``tgt_lang``, the pair is reversed
(an en→de catalogue trains de→en). Untranslated, fuzzy and obsolete entries are skipped and
counted; a plural entry gives two pairs, ``msgid``–``msgstr[0]`` and ``msgid_plural``–``msgstr[1]``.
A catalogue with one plural form (``nplurals=1``: Japanese, Chinese, ...) has no ``msgstr[1]``:
its ``msgstr[0]`` serves every number, so ``msgid``–``msgstr[0]`` is the pair and ``msgid_plural``
is left out (counted), rather than giving one text two translations. ``catalogue_checks`` rejects
damaged files (cut short, bad MO tables, strings left open) before polib reads them.
"""

import logging
import os
import re
from collections import Counter

import polib
from datasets import Dataset
from lxml import etree

from .catalogue_checks import check_mo, check_po
from .entities import InternalEntities, bomb_error, undefined_error
from .errors import DataFormatError, LanguageNotFoundError, missing_language
from .languages import match_language, match_pair
from .records import pairs_from_generator
from .textio import check_utf8

logger = logging.getLogger("hf_l2mt")

_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_INLINE_CODES = {"bpt", "ept", "ph", "it", "ut"}
_NPLURALS = re.compile(r"nplurals\s*=\s*(\d+)")
_UNDEFINED = re.compile(r"Entity '([^']+)' not defined")


def load_tmx(path, src_lang: str, tgt_lang: str, cache_dir=None) -> Dataset:
    """Pairs from the ``<tu>`` units of a TMX file that have both languages."""
    path = str(path)
    return pairs_from_generator(
        _tmx_pairs, {"path": path, "src_lang": src_lang, "tgt_lang": tgt_lang}, [path], cache_dir=cache_dir
    )


def load_po(path, src_lang: str, tgt_lang: str, cache_dir=None) -> Dataset:
    """Pairs from a gettext PO file (translated, non-fuzzy, non-obsolete entries)."""
    return _load_catalogue(path, src_lang, tgt_lang, cache_dir)


def load_mo(path, src_lang: str, tgt_lang: str, cache_dir=None) -> Dataset:
    """Pairs from a compiled gettext MO file (msgfmt leaves fuzzy and obsolete entries out)."""
    return _load_catalogue(path, src_lang, tgt_lang, cache_dir)


def _local(tag) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def segment_text(element, entities=None, line=0) -> str:
    """Text of a ``<seg>`` without the content of inline codes (their tails are text) or comments;
    entity references are replaced by their text (``entities``: ``InternalEntities``)."""
    parts = [element.text or ""]
    for child in element:
        if child.tag is etree.Entity:
            parts.append(entities.text(child, line) if entities else child.text)
        elif isinstance(child.tag, str) and _local(child.tag) not in _INLINE_CODES | {"sub"}:
            parts.append(segment_text(child, entities, line))
        parts.append(child.tail or "")
    return "".join(parts)


def _tu_texts(tu, entities, line) -> dict[str, str]:
    texts = {}
    for tuv in tu:
        if _local(tuv.tag) != "tuv":
            continue
        lang = tuv.get(_XML_LANG) or tuv.get("lang")
        seg = next((child for child in tuv if _local(child.tag) == "seg"), None)
        if lang and seg is not None and lang not in texts:
            entities.segment_added = 0
            texts[lang] = segment_text(seg, entities, line)
    return texts


def _tmx_pairs(path: str, src_lang: str, tgt_lang: str):
    seen, skipped, keys = set(), 0, None
    entities = InternalEntities(path, os.path.getsize(path), segment_text)
    # resolve_entities=False: references stay nodes, which ``entities`` expands within bounds; an
    # external entity is never read (nor a DTD: lxml's load_dtd is off), no_network for the rest.
    parser = etree.iterparse(path, events=("end",), tag="{*}tu", resolve_entities=False, no_network=True, huge_tree=True)
    try:
        for _, tu in parser:
            line = tu.sourceline
            texts = _tu_texts(tu, entities, line)
            tu.clear(keep_tail=True)
            while tu.getprevious() is not None:
                del tu.getparent()[0]
            seen.update(texts)
            if keys is None or not all(key in texts for key in keys):
                try:
                    keys = match_pair(src_lang, tgt_lang, texts, f"{path} line {line}")
                except LanguageNotFoundError:
                    skipped += 1
                    continue
            yield {"source": texts[keys[0]], "target": texts[keys[1]]}
    except etree.XMLSyntaxError as error:
        raise _syntax_error(path, error, parser.error_log) from None
    if keys is None and seen:
        missing = [code for code in (src_lang, tgt_lang) if not _names(code, seen)]
        raise missing_language(path, (missing or [tgt_lang])[0], seen)
    if skipped:
        logger.info("%s: skipped %d <tu> without both %s and %s", path, skipped, src_lang, tgt_lang)


def _syntax_error(path: str, error, log) -> DataFormatError:
    # libxml2 reports bad bytes as "Invalid bytes in character encoding" or "not proper UTF-8".
    if "encoding" in error.msg or "UTF-8" in error.msg:
        check_utf8(path)
    # For an undefined entity lxml's iterparse raises "no element found" at line 0; the log has the cause.
    fatal = next((entry for entry in log if entry.level == etree.ErrorLevels.FATAL), None)
    undefined = _UNDEFINED.match(fatal.message) if fatal is not None else None
    if undefined:
        return undefined_error(f"{path} line {fatal.line}", undefined.group(1))
    # libxml2 >= 2.11 says "amplification", older ones "entity reference loop" (for a loop too).
    if "amplification" in error.msg or "entity reference loop" in error.msg:
        return bomb_error(path, f"libxml2: {error.msg.split(',')[0]}")
    return DataFormatError(f"{path} line {error.lineno}: not valid TMX/XML ({error.msg})")


def _names(code, languages) -> bool:
    try:
        return bool(match_language(code, languages, ""))
    except LanguageNotFoundError:
        return False


def _read_catalogue(path: str):
    compiled = path.lower().endswith(".mo")
    (check_mo if compiled else check_po)(path)
    reader = polib.mofile if compiled else polib.pofile
    try:
        return reader(path)
    except UnicodeDecodeError:
        check_utf8(path)
        raise
    except (OSError, ValueError) as error:
        raise DataFormatError(f"{path}: not a valid gettext catalogue ({error})") from None


def _catalogue_reversed(catalogue, path: str, src_lang: str, tgt_lang: str) -> bool:
    """Whether msgstr is in ``src_lang`` (per the ``Language`` header); msgid's language is not declared."""
    language = catalogue.metadata.get("Language", "").strip()
    if not language or _names(tgt_lang, [language]):
        return False
    if _names(src_lang, [language]):
        return True
    raise missing_language(f"{path} (Language header: translations are in {language})", tgt_lang, [language])


def _load_catalogue(path, src_lang, tgt_lang, cache_dir) -> Dataset:
    path = str(path)
    return pairs_from_generator(
        _catalogue_pairs, {"path": path, "src_lang": src_lang, "tgt_lang": tgt_lang}, [path], cache_dir=cache_dir
    )


def plural_form_count(catalogue) -> int | None:
    """``nplurals`` of the ``Plural-Forms`` header; ``None`` when the header does not say."""
    found = _NPLURALS.search(catalogue.metadata.get("Plural-Forms", ""))
    return int(found.group(1)) if found else None


def _entry_pairs(entry, plural_forms: int | None) -> list[tuple[str, str]]:
    if entry.msgid_plural:
        forms = entry.msgstr_plural
        if (plural_forms or len(forms)) == 1:
            candidates = [(entry.msgid, forms.get(0, ""))]
        else:
            candidates = [(entry.msgid, forms.get(0, "")), (entry.msgid_plural, forms.get(1, ""))]
    else:
        candidates = [(entry.msgid, entry.msgstr)]
    return [(msgid, msgstr) for msgid, msgstr in candidates if msgstr]


def _catalogue_pairs(path: str, src_lang: str, tgt_lang: str):
    catalogue = _read_catalogue(path)
    reverse = _catalogue_reversed(catalogue, path, src_lang, tgt_lang)
    plural_forms = plural_form_count(catalogue)
    skipped = Counter()
    for entry in catalogue:
        # MO entries have no ``fuzzy`` attribute: msgfmt compiles translated entries only.
        if entry.obsolete or getattr(entry, "fuzzy", False):
            skipped["obsolete" if entry.obsolete else "fuzzy"] += 1
            continue
        pairs = _entry_pairs(entry, plural_forms)
        if not pairs:
            skipped["untranslated"] += 1
        elif entry.msgid_plural and len(pairs) == 1 and (plural_forms or len(entry.msgstr_plural)) == 1:
            skipped["msgid_plural (one plural form: msgstr[0] pairs with msgid only)"] += 1
        for msgid, msgstr in pairs:
            yield {"source": msgstr, "target": msgid} if reverse else {"source": msgid, "target": msgstr}
    if skipped:
        logger.info("%s: skipped %s", path, ", ".join(f"{count} {why}" for why, count in sorted(skipped.items())))
