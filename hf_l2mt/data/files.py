"""Local parallel files: TSV, CSV, JSON Lines / JSON and plain-text pairs (``train.en`` + ``train.de``).

Column choice for TSV and CSV:

* ``header=None`` (default) treats the first row as a header when it names both languages
  (``en``, ``de``, also ``en-US`` for ``en``; see ``languages.match_language``), or both
  ``columns`` when these are names; ``header=True`` / ``False`` says so explicitly.
* With a header, the columns are the ones named by the language codes, or by ``columns``.
* Without one, the first column is the source and the second the target; ``columns=(1, 0)``
  (0-based positions) picks others. Extra columns are ignored.
* Every non-blank line has as many fields as the first: a line with more or fewer is an error,
  since a tab or comma inside a sentence shifts the fields after it and the pair would be wrong.

TSV splits each line on tabs with no quoting (corpus TSVs hold unbalanced quotes); CSV follows
RFC 4180 quoting (Python's ``csv`` module, strict), so quoted fields may hold commas and newlines,
and a quote left open is an error at the line where its field starts. A field may be longer than
the ``csv`` module's default limit (see ``CSV_FIELD_LIMIT``); cleaning drops it as too long.
"""

import csv
import json
import os

from datasets import Dataset

from .errors import DataFormatError, LanguageNotFoundError, excerpt, listed
from .languages import match_language, match_pair
from .records import pairs_from_generator
from .textio import count_lines, iter_lines

# Python's csv refuses a field over 131,072 characters, but a valid CSV may hold one (a whole page
# in a cell): it is loaded, and cleaning drops it as too long, as a long TSV line. The limit is
# process-wide, so it is raised only while a row is parsed and set back before the row is yielded:
# a csv reader of the caller's keeps its own limit, also while this generator waits between rows.
# It stays bounded because a quote left open runs the field to the end of the file: the error then
# comes after 16 Mi characters (64 MiB at most) rather than after the whole file is in memory.
CSV_FIELD_LIMIT = 1 << 24


def load_tsv(path, src_lang: str, tgt_lang: str, header: bool | None = None, columns=None, cache_dir=None) -> Dataset:
    """Pairs from a tab-separated file (one pair per line, no quoting)."""
    return pairs_from_generator(*delimited_rows(path, src_lang, tgt_lang, "\t", header, columns), cache_dir=cache_dir)


def load_csv(path, src_lang: str, tgt_lang: str, header: bool | None = None, columns=None, cache_dir=None) -> Dataset:
    """Pairs from a comma-separated file with RFC 4180 quoting."""
    return pairs_from_generator(*delimited_rows(path, src_lang, tgt_lang, ",", header, columns), cache_dir=cache_dir)


def load_jsonl(path, src_lang: str, tgt_lang: str, cache_dir=None) -> Dataset:
    """Pairs from JSON Lines: ``{"translation": {"en": ..., "de": ...}}`` or flat ``{"en": ..., "de": ...}``.

    A ``.json`` file whose first character is ``[`` is read as one array of such records.
    Blank lines are skipped.
    """
    return pairs_from_generator(*json_rows(path, src_lang, tgt_lang), cache_dir=cache_dir)


def json_rows(path, src_lang: str, tgt_lang: str):
    """``(generator, gen_kwargs, files)`` of ``load_jsonl``: the pairs are read when the generator runs."""
    return _json_pairs, {"path": str(path), "src_lang": src_lang, "tgt_lang": tgt_lang}, [path]


def load_text_pair(prefix, src_lang: str, tgt_lang: str, cache_dir=None) -> Dataset:
    """Pairs from ``PREFIX.SRC`` and ``PREFIX.TGT``: line i of one translates line i of the other."""
    return pairs_from_generator(*text_pair_rows(prefix, src_lang, tgt_lang), cache_dir=cache_dir)


def text_pair_rows(prefix, src_lang: str, tgt_lang: str):
    """``(generator, gen_kwargs, files)`` of ``load_text_pair``, after checking that both files exist and
    have as many lines (counted in 1 MiB chunks, so a corpus of any size is checked in bounded memory)."""
    src_path, tgt_path = text_pair_paths(prefix, src_lang, tgt_lang)
    missing = [path for path in (src_path, tgt_path) if not os.path.isfile(path)]
    if missing:
        raise FileNotFoundError(
            f"plain-text pair {prefix!r}: {' and '.join(missing)} not found; the prefix needs "
            f"{src_path} and {tgt_path} beside each other"
        )
    src_count, tgt_count = count_lines(src_path), count_lines(tgt_path)
    if src_count != tgt_count:
        raise DataFormatError(
            f"plain-text pair {prefix!r}: {src_path} has {src_count} lines but {tgt_path} has {tgt_count}; "
            "both files need one sentence per line, line i of one translating line i of the other"
        )
    return _text_pairs, {"src_path": src_path, "tgt_path": tgt_path}, [src_path, tgt_path]


def text_pair_paths(prefix, src_lang: str, tgt_lang: str) -> tuple[str, str]:
    return f"{prefix}.{src_lang}", f"{prefix}.{tgt_lang}"


def _text_pairs(src_path: str, tgt_path: str):
    for (_, source), (_, target) in zip(iter_lines(src_path), iter_lines(tgt_path)):
        yield {"source": source, "target": target}


def _rows(path: str, delimiter: str):
    """``(line_number, fields)``; a blank line is one empty field, so it becomes an empty pair."""
    if delimiter == "\t":
        for number, line in iter_lines(path):
            yield number, line.split("\t")
        return
    numbered = iter_lines(path, keep_ends=True)
    reader = csv.reader((text for _, text in numbered), delimiter=delimiter, strict=True)
    start = 1
    try:
        while (fields := _next_csv_row(reader)) is not None:
            yield reader.line_num, fields or [""]
            start = reader.line_num + 1
    except csv.Error as error:
        if "field limit" in str(error):
            raise DataFormatError(
                f"{path} line {start}: a field runs past {CSV_FIELD_LIMIT:,} characters; most likely its opening "
                "quote is never closed, so the field runs on through the lines after it: close the quote "
                "(write a quote inside a quoted field as two quotes)"
            ) from None
        raise DataFormatError(
            f"{path} line {start}: not valid CSV ({error}); a quoted field must end with a quote followed by "
            "a comma or the end of the line (write a quote inside a quoted field as two quotes)"
        ) from None


def _next_csv_row(reader) -> list[str] | None:
    """The next row, read with ``csv.field_size_limit`` at ``CSV_FIELD_LIMIT`` and set back at once."""
    previous = csv.field_size_limit(CSV_FIELD_LIMIT)
    try:
        return next(reader, None)
    finally:
        csv.field_size_limit(previous)


def delimited_rows(path, src_lang: str, tgt_lang: str, delimiter: str, header=None, columns=None):
    """``(generator, gen_kwargs, files)`` of ``load_tsv`` / ``load_csv``; only the first line is read now."""
    path = str(path)
    first = next(_rows(path, delimiter), (1, []))[1]
    has_header, indices = _choose_columns(path, first, src_lang, tgt_lang, header, columns)
    gen_kwargs = {"path": path, "delimiter": delimiter, "indices": indices, "skip_first": has_header,
                  "langs": (src_lang, tgt_lang), "width": len(first)}
    return _delimited_pairs, gen_kwargs, [path]


def _choose_columns(path, first_row, src_lang, tgt_lang, header, columns) -> tuple[bool, tuple[int, int]]:
    named = columns is not None and len(columns) == 2 and all(isinstance(c, str) for c in columns)
    positions = columns is not None and len(columns) == 2 and all(isinstance(c, int) and c >= 0 for c in columns)
    if columns is not None and not (named or positions) or columns is not None and columns[0] == columns[1]:
        raise ValueError(
            f"columns={columns!r}: give two different column positions (0-based ints) or two header names"
        )
    if header is None:
        if named:
            header = all(name in first_row for name in columns)
        else:
            header = _names_languages(path, first_row, src_lang, tgt_lang)
    if named and not header:
        raise ValueError(
            f"columns={columns!r} names columns but {path} has no header line "
            f"(its first line is {shown_fields(first_row)}); give positions such as columns=(0, 1)"
        )
    if positions:
        return header, tuple(columns)
    if not header:
        return False, (0, 1)
    where = f"{path} line 1 (header)"
    if named:
        for name in columns:
            if name not in first_row:
                raise DataFormatError(f"{where}: no column named {name!r}; found: {listed(first_row)}")
        return True, (first_row.index(columns[0]), first_row.index(columns[1]))
    return True, tuple(first_row.index(key) for key in match_pair(src_lang, tgt_lang, first_row, where))


def shown_fields(fields, at_most: int = 4) -> str:
    """The fields of a line for a message: the first few, each cut by ``excerpt``."""
    shown = ", ".join(excerpt(field, 40) for field in fields[:at_most])
    return f"[{shown}{', …' if len(fields) > at_most else ''}]"


def _names_languages(path, row, src_lang, tgt_lang) -> bool:
    try:
        return all(match_language(code, row, f"{path} line 1 (header)") for code in (src_lang, tgt_lang))
    except LanguageNotFoundError:
        return False


def _delimited_pairs(path, delimiter, indices, skip_first, langs, width):
    needed = max(indices) + 1
    for index, (number, fields) in enumerate(_rows(path, delimiter)):
        if skip_first and index == 0:
            continue
        if fields == [""]:
            yield {"source": "", "target": ""}
            continue
        if len(fields) < needed:
            short = indices[0] if indices[0] >= len(fields) else indices[1]
            lang = langs[indices.index(short)]
            raise DataFormatError(
                f"{path} line {number}: found {len(fields)} column(s) {shown_fields(fields)}, but {lang!r} is "
                f"column {short + 1}; every line needs at least {needed} columns separated by {delimiter!r}"
            )
        if len(fields) != width:
            raise _ragged(path, number, fields, width, delimiter)
        yield {"source": fields[indices[0]], "target": fields[indices[1]]}


def _ragged(path, number, fields, width, delimiter) -> DataFormatError:
    """A line whose number of fields differs from line 1's: its pair would take the wrong fields."""
    if delimiter == "\t":
        quoted = [place for place, field in enumerate(fields, start=1) if field.startswith('"')]
        why = (f"field {quoted[0]} starts with a quote, but TSV is read without quoting, so a tab inside "
               "quotes splits the field; save the file as CSV to keep quoted tabs, or remove the tab"
               if quoted else "a tab inside a sentence splits it; remove that tab, or the extra field")
    else:
        why = "a comma inside a field splits it unless the field is quoted; quote that field"
    return DataFormatError(
        f"{path} line {number}: {len(fields)} fields {shown_fields(fields)}, but line 1 has {width}; {why}"
    )


def _json_records(path: str):
    """``(where, record)`` from JSON Lines, or from a JSON array when the file starts with ``[``."""
    with open(path, "rb") as handle:
        start = handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    if start.startswith(b"["):
        text = "".join(line for _, line in iter_lines(path, keep_ends=True))
        try:
            records = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataFormatError(f"{path} line {error.lineno}: not valid JSON ({error.msg})") from None
        for index, record in enumerate(records):
            yield f"{path} item {index}", record
        return
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataFormatError(
                f"{path} line {number}: not valid JSON ({error.msg}); each line must be one JSON object"
            ) from None
        yield f"{path} line {number}", record


def _json_pairs(path: str, src_lang: str, tgt_lang: str):
    keys = None
    for where, record in _json_records(path):
        texts = record.get("translation", record) if isinstance(record, dict) else record
        if not isinstance(texts, dict):
            raise DataFormatError(
                f"{where}: expected an object {{\"translation\": {{\"{src_lang}\": ..., \"{tgt_lang}\": ...}}}} "
                f"or {{\"{src_lang}\": ..., \"{tgt_lang}\": ...}}; found {json.dumps(texts)[:80]}"
            )
        if keys is None or not all(key in texts for key in keys):
            keys = match_pair(src_lang, tgt_lang, texts, where)
        source, target = texts[keys[0]], texts[keys[1]]
        for code, value in ((src_lang, source), (tgt_lang, target)):
            if not isinstance(value, str):
                raise DataFormatError(f"{where}: {code!r} is {json.dumps(value)}, expected a string")
        yield {"source": source, "target": target}

