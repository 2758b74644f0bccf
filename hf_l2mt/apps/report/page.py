"""``forgetting_report.html``: the forgetting report as one page to look at, after compare-mt (Neubig et al. 2019).

One self-contained HTML file (inline CSS, the PNG embedded, no script, nothing fetched) rendered from
``forgetting_report.json`` through one jinja2 template (``templates/forgetting_report.html.j2``): the answer
to "did it forget?" in one sentence (``forgetting.verdict``), what each term means, the score table with 95 %
intervals and significance, the in-domain/general plot, chrF by source length and by the frequency of the
rarest source word (where did it forget?), the sentences where this run got most worse and most better than
the base with the characters where the two differ marked, and an optional glossary section. Buckets and
examples need the report's per-sentence data (``sets[NAME]["sentences"]``, written by ``hf-l2mt evaluate
--base`` and at the end of a run); an older report gets the table and the plot only.

Besides the report, the page is rendered from its settings (``page_settings``): the headline score, the
examples per set and the word counts of the frequency buckets. They are saved in the JSON under ``"page"``,
so ``hf-l2mt report`` (``command``) rebuilds the same page.
"""

import base64
import difflib
import json
import os
import re
import tempfile
from collections import Counter

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from sacrebleu.metrics import CHRF

from ...atomic_write import atomic_path
from ...evaluation.forgetting import BASE, DEFAULT_HEADLINE_METRIC, GENERAL, RUN, check_headline_metric, verdict
from ...evaluation.report_names import REPORT_SCORE_NAMES, SCORE_TITLES
from .plot import plot_forgetting
from .settings import DEFAULT_EXAMPLES, PAGE_FILE
from ...evaluation.significance import format_p_value

TEMPLATE = "forgetting_report.html.j2"
# (low, high) inclusive; None: no upper bound.
LENGTH_BUCKETS = ((1, 5), (6, 10), (11, 20), (21, 40), (41, None))  # source words
FREQUENCY_BUCKETS = ((0, 0), (1, 1), (2, 4), (5, 9), (10, 99), (100, None))  # count of the rarest source word


def words(text: str) -> list[str]:
    """Lower-cased word tokens: what the frequency buckets count."""
    return re.findall(r"\w+", text.lower())


def word_counts(lines: list[str]) -> Counter:
    return Counter(word for line in lines for word in words(line))


def bucket_label(low: int, high: int | None) -> str:
    if high is None:
        return f"{low}+"
    return str(low) if low == high else f"{low}–{high}"


def bucket_index(value: int, buckets) -> int:
    return next(i for i, (low, high) in enumerate(buckets) if value >= low and (high is None or value <= high))


def bucket_scores(values: list[int], sentences: dict, buckets, models: list[str]) -> list[dict]:
    """Corpus chrF of each model on the sentences of each non-empty bucket, and this run's change against the base."""
    members = [[] for _ in buckets]
    for sentence, value in enumerate(values):
        members[bucket_index(value, buckets)].append(sentence)
    rows = []
    for (low, high), chosen in zip(buckets, members):
        if not chosen:
            continue
        references = [sentences["reference"][i] for i in chosen]
        scores = {
            model: CHRF().corpus_score([sentences["translations"][model][i] for i in chosen], [references]).score
            for model in models
        }
        rows.append({"label": bucket_label(low, high), "count": len(chosen), "scores": scores,
                     "change": scores[RUN] - scores[BASE]})
    return rows


def char_diff(old: str, new: str) -> tuple[Markup, Markup]:
    """``old`` and ``new`` HTML-escaped, with the characters that differ between them in ``<del>`` and ``<ins>``."""
    old_html, new_html = [], []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "equal":
            old_html.append(escape(old[i1:i2]))
            new_html.append(escape(new[j1:j2]))
            continue
        if i2 > i1:
            old_html.append(Markup("<del>%s</del>") % old[i1:i2])
        if j2 > j1:
            new_html.append(Markup("<ins>%s</ins>") % new[j1:j2])
    return Markup("").join(old_html), Markup("").join(new_html)


def extreme_examples(sentences: dict, count: int) -> dict[str, list[dict]]:
    """The ``count`` sentences whose sentence-level chrF dropped most from the base to this run (``"worse"``), and
    the ``count`` where it rose most (``"better"``); ties keep the order of the test set."""
    chrf = CHRF()
    base, run = (
        [chrf.sentence_score(hypothesis, [reference]).score
         for hypothesis, reference in zip(sentences["translations"][model], sentences["reference"])]
        for model in (BASE, RUN)
    )
    changes = [after - before for before, after in zip(base, run)]

    def example(i: int) -> dict:
        base_html, run_html = char_diff(sentences["translations"][BASE][i], sentences["translations"][RUN][i])
        return {"line": i + 1, "source": sentences["source"][i], "reference": sentences["reference"][i],
                "base": base_html, "run": run_html, "base_chrf": base[i], "run_chrf": run[i], "change": changes[i]}

    worse = sorted((i for i, change in enumerate(changes) if change < 0), key=lambda i: (changes[i], i))[:count]
    better = sorted((i for i, change in enumerate(changes) if change > 0), key=lambda i: (-changes[i], i))[:count]
    return {"worse": [example(i) for i in worse], "better": [example(i) for i in better]}


def set_details(entry: dict, models: list[str], train_counts: Counter | None, examples: int) -> dict | None:
    """Buckets and examples of one set; ``None`` when the report holds no sentences for it."""
    sentences = entry.get("sentences")
    if not sentences:
        return None
    counts = train_counts if train_counts is not None else word_counts(sentences["source"])
    lengths = [max(1, len(words(source))) for source in sentences["source"]]
    rarest = [min((counts[word] for word in words(source)), default=0) for source in sentences["source"]]
    return {
        "by_length": bucket_scores(lengths, sentences, LENGTH_BUCKETS, models),
        "by_frequency": bucket_scores(rarest, sentences, FREQUENCY_BUCKETS, models),
        "examples": extreme_examples(sentences, examples),
    }


def embedded_plot(report: dict, png_path: str | None, metric: str) -> str | None:
    """The in-domain/general PNG as a ``data:`` URI: ``png_path`` if given, else drawn now in ``metric`` (``None``
    without matplotlib, or when the report lacks a general or an in-domain set)."""
    if png_path is None:
        with tempfile.TemporaryDirectory() as scratch:
            try:
                drawn = plot_forgetting(report, os.path.join(scratch, "plot.png"), metric)
            except ImportError:
                return None
            return None if drawn is None else _data_uri(drawn)
    return _data_uri(png_path)


def _data_uri(path: str) -> str:
    with open(path, "rb") as handle:
        return "data:image/png;base64," + base64.b64encode(handle.read()).decode("ascii")


def page_settings(
    report: dict,
    *,
    train_sources: list[str] | None = None,
    train_name: str = "the training data",
    examples: int = DEFAULT_EXAMPLES,
    metric: str | None = None,
) -> dict:
    """What the page is rendered from besides the report: the headline score (default: the report's), the
    examples shown per set and, with ``train_sources`` (the run's training sources, called ``train_name`` on the
    page), where the words were counted and the counts there of the words in the report's sources, which is all
    the frequency buckets read; without them (``None``), each test set counts its own words."""
    metric = metric or report.get("headline_metric", DEFAULT_HEADLINE_METRIC)
    check_headline_metric(metric, "--metric")
    counts = None
    if train_sources is not None:
        counted = word_counts(train_sources)
        needed = {word for entry in report["sets"].values() for source in entry.get("sentences", {}).get("source", ())
                  for word in words(source)}
        counts = {word: counted[word] for word in sorted(needed) if counted[word]}
    return {"headline_metric": metric, "examples": examples,
            "words_counted_in": train_name if train_sources is not None else None, "word_counts": counts}


def render_page(report: dict, settings: dict | None = None, *, png_path: str | None = None) -> str:
    """The page's HTML, rendered with ``settings`` (``page_settings``; default: those the report saved, else
    ``page_settings(report)``)."""
    settings = settings or report.get("page") or page_settings(report)
    metric = settings["headline_metric"]
    models = [BASE, RUN, *report["compared"]]
    train_counts = None if settings["word_counts"] is None else Counter(settings["word_counts"])
    details = {name: set_details(entry, models, train_counts, settings["examples"])
               for name, entry in report["sets"].items()}
    environment = Environment(
        loader=FileSystemLoader(os.path.join(os.path.dirname(__file__), "templates")),
        autoescape=select_autoescape(default=True), trim_blocks=True, lstrip_blocks=True,
    )
    environment.filters["p_value"] = lambda p_value: format_p_value(p_value, report["bootstrap"]["resamples"])
    return environment.get_template(TEMPLATE).render(
        report=report, models=models, fine_tuned=[RUN, *report["compared"]], details=details,
        metrics=REPORT_SCORE_NAMES, titles=SCORE_TITLES, general=GENERAL, headline=metric,
        verdict=verdict(report, metric), plot=embedded_plot(report, png_path, metric),
        frequency_source=settings["words_counted_in"] or "each test set itself", glossary=report.get("glossary"),
    )


def write_page(report: dict, path: str, settings: dict | None = None, *, png_path: str | None = None) -> str:
    """``render_page(report, settings, png_path=png_path)`` written to ``path`` (temporary file, then rename)."""
    return write_html(render_page(report, settings, png_path=png_path), path)


def write_html(html: str, path: str) -> str:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(html)
    return path
