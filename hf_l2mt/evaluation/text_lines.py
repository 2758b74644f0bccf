"""Sentences of a UTF-8 text, one per line, as sacreBLEU reads them; standard library only, so that reading the
input of ``hf-l2mt translate`` loads nothing a CTranslate2 export does not need."""


def decode_lines(data: bytes, name: str) -> list[str]:
    """UTF-8 ``data`` split into lines as sacreBLEU reads them; the error names ``name`` and the byte."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{name}: not valid UTF-8 at byte {err.start}; input must be UTF-8 text") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def read_lines(path: str) -> list[str]:
    """Sentences of a UTF-8 text file, one per line."""
    with open(path, "rb") as handle:
        return decode_lines(handle.read(), path)
