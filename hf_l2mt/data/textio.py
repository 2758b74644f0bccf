"""Reading corpus files as UTF-8 text whose errors name the file, the line and the byte offset.

Files are read in binary and split on ``\\n`` only: text mode would also split on a lone ``\\r``
(universal newlines), which would shift one side of a parallel corpus against the other. A
UTF-8 byte-order mark at the start is dropped. A NUL byte is an error: no text file holds one,
while UTF-16 text and binary files (a compressed or compiled file under a text name) are full of them.
"""

import os
from collections.abc import Iterator

from .errors import DataFormatError

_CHUNK = 1 << 20
_UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")
_NUL = b"\0"


def iter_lines(path: str | os.PathLike, keep_ends: bool = False) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` from 1; ``DataFormatError`` with the byte offset on bad UTF-8 or a NUL."""
    offset = 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                utf16 = " (it starts with a UTF-16 byte-order mark)" if offset == 0 and raw[:2] in _UTF16_MARKS else ""
                raise DataFormatError(
                    f"{path}: invalid UTF-8 at byte offset {offset + error.start} (line {number}, "
                    f"byte {raw[error.start:error.start + 1]!r}){utf16}; files must be UTF-8 encoded "
                    "(convert with: iconv -f OLD_ENCODING -t UTF-8)"
                ) from None
            if "\0" in text:
                raise DataFormatError(
                    f"{path}: NUL byte at byte offset {offset + raw.index(_NUL)} (line {number}); text files hold "
                    "none, so this is UTF-16 text or a binary file; give UTF-8 text "
                    "(convert with: iconv -f UTF-16 -t UTF-8)"
                )
            if number == 1 and text.startswith("\ufeff"):
                text = text[1:]
            yield number, text if keep_ends else text.rstrip("\r\n")
            offset += len(raw)


def count_lines(path: str | os.PathLike) -> int:
    """Number of lines as ``iter_lines`` yields them (a last line without ``\\n`` counts)."""
    count, last = 0, b"\n"
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def check_utf8(path: str | os.PathLike) -> None:
    """Raise ``iter_lines``' error (file, byte offset, line) if ``path`` is not valid UTF-8."""
    for _ in iter_lines(path):
        pass
