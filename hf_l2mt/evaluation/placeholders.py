"""Placeholder accuracy: does a translation keep exactly the placeholders of its source?

Software strings carry placeholders that a program fills in; a translation that drops, adds or alters one
breaks the program. Recognised (each kept as written, so ``%s`` and ``%1$s`` are different placeholders):

- printf formats: ``%s``, ``%d``, ``%5.2f``, ``%ld``, ``%zu``, ``%-10s``, positional ``%1$s``, and glibc's
  ``%m`` (the text of ``errno``);
- GCC's diagnostic formats (``gcc/pretty-print.cc``, ``gcc/cp/error.cc``): ``%qD``, ``%qE``, ``%q#D``,
  ``%qs``, ``%D``, ``%E``, ``%T``, ``%wu``, ``%L`` and ``%C`` (Fortran source locations), ``%P``, ``%Z``,
  and its markers: ``%<`` and ``%>`` open and close a quoted code fragment, ``%'`` is a quoted
  apostrophe, ``%{`` and ``%}`` enclose a link, ``%R`` ends a colour that ``%r`` started;
- Python's named formats ``%(name)s``;
- Qt's numbered arguments ``%1`` … ``%99``;
- ``str.format`` / ICU fields ``{0}``, ``{name}``, ``{0:.2f}``, ``{name!r}``;
- numbered arguments ``$1`` … ``$99``.

``%%`` is a literal percent sign and ``{{`` / ``}}`` literal braces, not placeholders; so is a percent
sign followed by a space or by nothing a placeholder can start with (``100%``, ``50 % off``). A dollar
amount of one or two digits (``$5``) reads as a numbered argument: in text without placeholders such
amounts are kept as written by a correct translation, so they rarely count against it.
"""

import re
from collections import Counter

PLACEHOLDER = re.compile(
    r"""
    (?P<literal>%%|\{\{|\}\})
    | (?P<python>%\([^()\s]+\)[-+#0]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa])
    | (?P<printf>%(?:\d+\$)?[-+#0'q]*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|h|ll|l|L|q|j|z|t|w|I64)?
        [diouxXeEfFgGaAcspnrDTVmLCPZ])
    | (?P<gcc_marker>%[<>'{}R])
    | (?P<qt>%\d{1,2}(?!\d))
    | (?P<brace>\{[A-Za-z_0-9][\w.\[\]]*(?:![rsa])?(?::[^{}]*)?\})
    | (?P<dollar>\$\d{1,2}(?![\d]|[.,]\d))
    """,
    re.VERBOSE,
)
NO_PLACEHOLDER = "undefined: no source sentence has a placeholder"


def placeholders_in(text: str) -> Counter:
    """The placeholders of ``text`` as a multiset (placeholder → how often)."""
    return Counter(match.group(0) for match in PLACEHOLDER.finditer(text) if match.lastgroup != "literal")


def placeholder_accuracy(sources: list[str], translations: list[str]) -> dict:
    """``correct`` (sentences whose source has a placeholder and whose translation has exactly the same
    multiset), ``sentences_with_placeholder``, ``accuracy`` (their ratio; ``None`` with ``why`` when no source
    has a placeholder) and ``wrong``: per sentence (``line``, from 1) the placeholders missing from the
    translation and those it added."""
    correct, with_placeholder, wrong = 0, 0, []
    for line, (source, translation) in enumerate(zip(sources, translations, strict=True), start=1):
        expected = placeholders_in(source)
        if not expected:
            continue
        with_placeholder += 1
        found = placeholders_in(translation)
        if found == expected:
            correct += 1
        else:
            wrong.append({
                "line": line,
                "missing": sorted((expected - found).elements()),
                "added": sorted((found - expected).elements()),
            })
    if not with_placeholder:
        return {"correct": 0, "sentences_with_placeholder": 0, "accuracy": None, "why": NO_PLACEHOLDER, "wrong": []}
    return {
        "correct": correct, "sentences_with_placeholder": with_placeholder, "accuracy": correct / with_placeholder,
        "why": "correct / sentences_with_placeholder", "wrong": wrong,
    }


def any_placeholder(sources: list[str]) -> bool:
    return any(placeholders_in(source) for source in sources)
