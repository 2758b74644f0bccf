"""Entities that a TMX file declares in its internal DTD subset, expanded in segments within bounds.

``<!DOCTYPE tmx [<!ENTITY product "Django">]>`` lets a segment say ``&product;``. The parser keeps
each reference as a node (``resolve_entities=False``), so an external entity (``SYSTEM "file:…"``)
is never read, and this module replaces the references inside ``<seg>`` by their text: nested
references (``<!ENTITY full "&product; 5.0">``), character references and markup in the
replacement text are read as XML reads them.

Expansion is bounded, so that a file of a few kilobytes cannot grow into gigabytes (entities nested
ten deep with ten references each, the "billion laughs"; or one large entity referenced thousands
of times). The size an entity expands to is computed from the declarations before any text is
built, and a reference is refused when it would add more than ``MAX_SEGMENT_CHARS`` characters to
one segment, or more than ``max(MIN_FILE_CHARS, FILE_RATIO * file size)`` to the whole file. The
characters built are counted (``added``): never more than these bounds.
"""

import re
from collections import Counter

from lxml import etree

from .errors import DataFormatError

# A segment is a sentence or a paragraph: cleaning drops any side over 1,024 characters by default.
MAX_SEGMENT_CHARS = 1_000_000
# Entities name products and short phrases: a genuine memory expands by less than its own size.
MIN_FILE_CHARS = 10_000_000
FILE_RATIO = 5
# libxml2's own bound for nested entities; it also keeps the recursion here far from Python's limit.
MAX_DEPTH = 40

PREDEFINED = ("amp", "lt", "gt", "quot", "apos")
_REFERENCE = re.compile(r"&([^\s&;#<>]+);")
_FRAGMENT_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True, remove_pis=True)


def bomb_error(path: str, detail: str) -> DataFormatError:
    return DataFormatError(
        f"{path}: entity expansion refused ({detail}); a TMX's entities stand for names and short phrases, "
        "so a file whose entities multiply its text is refused as an entity expansion bomb "
        "(a 'billion laughs'); if the file is genuine, replace the references with their text"
    )


def undefined_error(where: str, name: str, external_dtd: bool = False) -> DataFormatError:
    also = " (its external DTD is not read)" if external_dtd else ""
    return DataFormatError(
        f"{where}: entity '&{name};' is not defined; XML defines only "
        f"{', '.join(f'&{known};' for known in PREDEFINED)}, others must be declared in the file's "
        f"<!DOCTYPE tmx [<!ENTITY {name} \"...\">]>{also}; an HTML name such as &nbsp; is written as its "
        "character or a character reference (&#160;)"
    )


class InternalEntities:
    """The internal entities of one TMX file: ``text(reference, line)`` for a reference node in a segment."""

    def __init__(self, path: str, file_size: int, segment_text):
        self.path, self._segment_text = path, segment_text
        self.file_limit = max(MIN_FILE_CHARS, FILE_RATIO * file_size)
        self.added = 0  # characters that references have added to this file's segments
        self.segment_added = 0  # the same, in the segment being read; the caller resets it
        self._declared = None  # name -> replacement text, None for an external entity
        self._external_dtd, self._ambiguous = False, set()
        self._sizes, self._texts = {}, {}

    def text(self, reference, line: int) -> str:
        """The text ``reference`` (an ``etree.Entity`` node) stands for, or ``DataFormatError``."""
        if self._declared is None:
            self._read_declarations(reference.getroottree())
        where = f"{self.path} line {line}"
        size = self._size(reference.name, where, ())
        if self.segment_added + size > MAX_SEGMENT_CHARS:
            raise bomb_error(self.path, f"line {line}: entities would make one segment "
                             f"{self.segment_added + size:,} characters long ('&{reference.name};' alone "
                             f"{size:,}), at most {MAX_SEGMENT_CHARS:,} are allowed")
        if self.added + size > self.file_limit:
            raise bomb_error(self.path, f"line {line}: with '&{reference.name};' entities would add more than "
                             f"{self.file_limit:,} characters to the file ({FILE_RATIO} times its size, at least "
                             f"{MIN_FILE_CHARS:,})")
        if reference.name not in self._texts:
            self._texts[reference.name] = self._build(reference.name, where)
        text = self._texts[reference.name]
        self.added += len(text)
        self.segment_added += len(text)
        return text

    def _read_declarations(self, tree) -> None:
        dtd, counts = tree.docinfo.internalDTD, Counter()
        self._external_dtd = bool(tree.docinfo.system_url)
        self._declared = {}
        for declaration in dtd.iterentities() if dtd is not None else ():
            counts[declaration.name] += 1
            self._declared.setdefault(declaration.name, declaration.content)
        # lxml lists parameter entities (``<!ENTITY % name …>``) with the general ones and does not
        # say which is which (libxml2 keeps only the first of two general ones): a name listed twice
        # is one of each, which cannot be told apart, so it is not expanded.
        self._ambiguous = {name for name, count in counts.items() if count > 1}

    def _size(self, name: str, where: str, chain: tuple) -> int:
        """Characters ``&name;`` expands to at most (markup counted too), from the declarations alone."""
        if name in self._sizes:
            return self._sizes[name]
        if name in PREDEFINED:
            return 1
        if name in chain or len(chain) >= MAX_DEPTH:
            steps = " -> ".join(f"&{step};" for step in (*chain, name)[-6:])
            raise DataFormatError(f"{where}: entity '&{chain[0]};' refers to itself or nests more than "
                                  f"{MAX_DEPTH} deep (… {steps}); an entity's text cannot contain itself")
        if name in self._ambiguous:
            raise DataFormatError(f"{where}: '{name}' is declared both as a parameter entity (<!ENTITY % {name} …>) "
                                  "and as a general entity, which cannot be told apart here; rename one of them")
        if name not in self._declared:
            raise undefined_error(where, name, self._external_dtd)
        replacement = self._declared[name]
        if replacement is None:
            raise DataFormatError(
                f"{where}: entity '&{name};' is external (declared with SYSTEM or PUBLIC); external entities "
                "are never read, so that a file cannot make hf_l2mt read other files or URLs; replace the "
                "reference with its text or declare it with its text: <!ENTITY name \"text\">"
            )
        size = len(replacement)
        for found in _REFERENCE.finditer(replacement):
            size += self._size(found.group(1), where, (*chain, name)) - len(found.group(0))
        self._sizes[name] = size
        return size

    def _replacement(self, name: str) -> str:
        """The replacement text with the references to declared entities replaced by theirs, as XML reads it."""
        return _REFERENCE.sub(
            lambda found: found.group(0) if found.group(1) in PREDEFINED else self._replacement(found.group(1)),
            self._declared[name],
        )

    def _build(self, name: str, where: str) -> str:
        try:
            fragment = etree.fromstring(f"<seg>{self._replacement(name)}</seg>", _FRAGMENT_PARSER)
        except etree.XMLSyntaxError as error:
            raise DataFormatError(
                f"{where}: entity '&{name};' holds markup that is not well-formed ({error.msg}); "
                "an entity's text must open and close its own tags"
            ) from None
        return self._segment_text(fragment)
