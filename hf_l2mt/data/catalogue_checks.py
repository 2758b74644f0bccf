"""Checks that a gettext catalogue is whole before polib reads it.

polib trusts what it reads: an MO file cut short (an interrupted download) gives short reads, so
its last strings come out truncated or empty and are counted as untranslated, and a PO file cut
inside a string keeps the string up to the cut. These checks find such damage first and name the
file, the line or byte offset, and what to do.

MO layout (GNU gettext manual, "The Format of GNU MO Files"): a 28-byte header of 32-bit words
(magic, revision, number of strings N, offset of the originals' table, offset of the
translations' table, hash size, hash offset); each table holds N (length, offset) pairs.
"""

import re
import struct

from .errors import DataFormatError, TruncatedFileError, excerpt

MO_MAGIC = 0x950412DE
_MO_HEADER_BYTES = 28
_AGAIN = "download or copy it again, or recompile it from its .po with msgfmt"

_PO_STRING = rb'"(?:[^"\\]|\\.)*"'
_PO_KEYWORD = re.compile(rb"(msgctxt|msgid_plural|msgid|msgstr\[\d+\]|msgstr)(?=[\s\"])\s*(.*)")
_PO_WHOLE_STRING = re.compile(_PO_STRING + rb"\s*")


def check_mo(path: str) -> None:
    """``TruncatedFileError`` or ``DataFormatError`` unless every table and string lies inside the file."""
    with open(path, "rb") as handle:
        data = handle.read()
    size = len(data)
    if size < _MO_HEADER_BYTES:
        raise TruncatedFileError(
            f"{path}: {size} bytes, shorter than the {_MO_HEADER_BYTES}-byte header of an MO file; "
            f"the file is cut short or empty; {_AGAIN}"
        )
    order = _byte_order(path, data)
    revision, count, originals, translations = struct.unpack_from(order + "4I", data, 4)
    if revision >> 16 not in (0, 1):
        raise DataFormatError(f"{path}: MO revision {revision >> 16}.{revision & 0xFFFF} is not one gettext "
                              "writes (0 or 1); recompile it from its .po with msgfmt")
    for name, table in (("originals", originals), ("translations", translations)):
        end = table + 8 * count
        if end > size:
            raise TruncatedFileError(
                f"{path}: the table of {name} ({count:,} strings from byte offset {table:,}) ends at byte "
                f"{end:,}, but the file has {size:,} bytes; it is cut short or damaged; {_AGAIN}"
            )
        for index in range(count):
            length, offset = struct.unpack_from(order + "2I", data, table + 8 * index)
            _check_mo_string(path, data, name, index, length, offset)


def _byte_order(path: str, data: bytes) -> str:
    for order in ("<", ">"):
        if struct.unpack_from(order + "I", data)[0] == MO_MAGIC:
            return order
    raise DataFormatError(
        f"{path}: not a compiled gettext catalogue: it starts with {data[:8]!r}, MO files with "
        f"0x{MO_MAGIC:08x}{_what_it_looks_like(data)}; give an MO file written by msgfmt"
    )


def _what_it_looks_like(data: bytes) -> str:
    start = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if start[:1] == b"<":
        return " (it looks like HTML or XML: a web page saved in place of the file?)"
    if start.startswith((b"#", b"msgid", b"msgctxt")):
        return " (it looks like a text catalogue: name it .po)"
    return ""


def _check_mo_string(path: str, data: bytes, table: str, index: int, length: int, offset: int) -> None:
    end = offset + length
    if end > len(data):
        raise TruncatedFileError(
            f"{path}: string {index + 1:,} of the {table} (byte offset {offset:,}, {length:,} bytes) ends at "
            f"byte {end:,}, but the file has {len(data):,} bytes; it is cut short or damaged; {_AGAIN}"
        )
    try:
        data[offset:end].decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataFormatError(
            f"{path}: string {index + 1:,} of the {table} is not valid UTF-8 at byte offset "
            f"{offset + error.start:,} (byte {data[offset + error.start:offset + error.start + 1]!r}); "
            "recompile the catalogue as UTF-8 (msgconv --to-code=UTF-8 then msgfmt)"
        ) from None


def check_po(path: str) -> None:
    """``TruncatedFileError`` or ``DataFormatError`` for a line polib would read wrongly.

    Works on bytes, so catalogues in any ASCII-compatible charset are checked alike; quotes and
    backslashes are ASCII in all of them.
    """
    with open(path, "rb") as handle:
        lines = handle.read().split(b"\n")
    ends_with_newline = lines[-1] == b""
    open_msgid = None
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        keyword = _PO_KEYWORD.fullmatch(line)
        text = keyword.group(2) if keyword else line
        if not (keyword or line.startswith(b'"')):
            raise DataFormatError(
                f"{path} line {number}: expected msgid, msgstr, a quoted string or a # comment; found "
                f"{excerpt(line.decode('utf-8', 'replace'))}; fix that line"
            )
        if not _PO_WHOLE_STRING.fullmatch(text):
            last = number == len(lines) and not ends_with_newline
            raise (TruncatedFileError if last else DataFormatError)(
                f"{path} line {number}: the string {excerpt(text.decode('utf-8', 'replace'))} is not closed "
                + ("and the file ends there: it is cut short; download or copy it again" if last else
                   "by a quote, or holds a quote not written as \\\"; fix that line")
            )
        if keyword:
            word = keyword.group(1)
            if word in (b"msgid", b"msgctxt") and open_msgid:
                raise DataFormatError(f"{path} line {open_msgid}: msgid without msgstr; add its msgstr")
            if word == b"msgid":
                open_msgid = number
            elif word.startswith(b"msgstr"):
                open_msgid = None
    if open_msgid:
        raise TruncatedFileError(
            f"{path} line {open_msgid}: msgid without msgstr at the end of the file: it is cut short; "
            "download or copy it again"
        )
