"""Placeholder accuracy on constructed sentences: what is a placeholder, what is a literal, and the ratio."""

from collections import Counter

import pytest

from hf_l2mt.evaluation.placeholders import NO_PLACEHOLDER, placeholder_accuracy, placeholders_in


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Deleted %d files in %s", ["%d", "%s"]),
        ("%1$s has %2$d items", ["%1$s", "%2$d"]),
        ("expected %qD before %qs", ["%qD", "%qs"]),
        ("%-10s|%5.2f|%ld|%zu|%.*s", ["%-10s", "%5.2f", "%ld", "%zu", "%.*s"]),
        ("%(count)d files in %(folder)s", ["%(count)d", "%(folder)s"]),
        ("{0} of {total} at {0:.2f} ({name!r})", ["{0}", "{total}", "{0:.2f}", "{name!r}"]),
        ("Replace $1 with $2", ["$1", "$2"]),
        ("Copying %1 of %2", ["%1", "%2"]),
        ("%s and %s again", ["%s", "%s"]),
        ("%s of %d at %ld, %zu and %5.2f%%", ["%s", "%d", "%ld", "%zu", "%5.2f"]),
        ("%qE argument of %q#D and %+qD", ["%qE", "%q#D", "%+qD"]),
        ("%s: %m", ["%s", "%m"]),
        ("between %wu and %wu bytes at %L", ["%wu", "%wu", "%L"]),
        ("inlined from %qs at %r%s:%d%R", ["%qs", "%r", "%s", "%d", "%R"]),
    ],
)
def test_placeholders_are_found_as_written(text, expected):
    assert placeholders_in(text) == Counter(expected)


@pytest.mark.parametrize(
    "text",
    [
        "100% sure",
        "50 % off, and 100%.",
        "Growth of 5%, not 6 %",
        "%% of the disk",
        "{{braces}} are literal",
        'a JSON body {"key": 1}',
        "costs $5.50",
    ],
)
def test_literals_are_not_placeholders(text):
    assert placeholders_in(text) == Counter()


def test_a_literal_percent_next_to_a_placeholder():
    # "%%" is consumed as one literal, so "%%s" is a percent sign and the letter s, and "%%%s" ends in a %s.
    assert placeholders_in("%%s") == Counter()
    assert placeholders_in("%%%s") == Counter({"%s": 1})
    assert placeholders_in("100%% %d") == Counter({"%d": 1})


def test_accuracy_counts_sentences_whose_translation_has_the_same_multiset():
    sources = [
        "Open %s",  # kept
        "No placeholder here",  # not counted, whatever the translation holds
        "Got %d of %d",  # one %d dropped
        "%s then %d",  # reordered: the same multiset, correct
        "Move {0} to {1}",  # {1} turned into {2}
        "100% of %s",  # the literal percent may go; %s is kept
    ]
    translations = ["Öffne %s", "Kein %s", "Habe %d", "%d dann %s", "Verschiebe {0} nach {2}", "Alles von %s"]
    result = placeholder_accuracy(sources, translations)
    assert result["sentences_with_placeholder"] == 5
    assert result["correct"] == 3
    assert result["accuracy"] == pytest.approx(3 / 5)
    assert result["wrong"] == [
        {"line": 3, "missing": ["%d"], "added": []},
        {"line": 5, "missing": ["{1}"], "added": ["{2}"]},
    ]


def test_an_extra_placeholder_is_wrong():
    result = placeholder_accuracy(["Save %s"], ["Speichere %s %s"])
    assert (result["correct"], result["wrong"]) == (0, [{"line": 1, "missing": [], "added": ["%s"]}])


def test_accuracy_is_undefined_without_a_placeholder_in_any_source():
    result = placeholder_accuracy(["100% sure", "plain text"], ["%s", "{0}"])
    assert result["accuracy"] is None
    assert result["why"] == NO_PLACEHOLDER
    assert result["sentences_with_placeholder"] == 0


def test_gcc_quote_markers_are_placeholders_around_the_quoted_text():
    # GCC's "%<...%>" quotes code; the markers must survive, the code between them is text.
    assert placeholders_in("use of %<make_signed_t<size_t>%> at %C") == Counter({"%<": 1, "%>": 1, "%C": 1})
    assert placeholders_in("%<%.*s%> directive") == Counter({"%<": 1, "%.*s": 1, "%>": 1})
    assert placeholders_in("couldn%'t deduce %qT, see %{in GCC 12.1%}") == Counter(
        {"%'": 1, "%qT": 1, "%{": 1, "%}": 1})


def test_a_translation_that_drops_a_gcc_quote_marker_is_wrong():
    result = placeholder_accuracy(["option %<-std=c++17%> is invalid"], ["Option »-std=c++17« ist ungültig"])
    assert result["accuracy"] == 0.0
    assert result["wrong"] == [{"line": 1, "missing": ["%<", "%>"], "added": []}]


def test_an_apostrophe_after_a_literal_percent_is_text():
    # "%%'" is a literal percent and an apostrophe; the grouping flag "%'d" is one placeholder.
    assert placeholders_in("100%%'s worth") == Counter()
    assert placeholders_in("%'d files") == Counter({"%'d": 1})
