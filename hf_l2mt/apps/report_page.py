"""``forgetting_report.html``: the forgetting report as one page to look at, after compare-mt (Neubig et al. 2019).

One self-contained HTML file (inline CSS, the PNG embedded, no script, nothing fetched) rendered from
``forgetting_report.json`` through one jinja2 template (``templates/forgetting_report.html.j2``): the score
table with 95 % intervals and significance, the in-domain/general plot, chrF by source length and by the
frequency of the rarest source word (where did it forget?), the sentences where this run got most worse
and most better than the base with the characters where the two differ marked, and an optional glossary
section. Buckets and examples need the report's per-sentence data (``sets[NAME]["sentences"]``, written by
``hf-l2mt evaluate --base`` and at the end of a run); an older report gets the table and the plot only.
"""

import base64
import difflib
import json
import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from sacrebleu.metrics import CHRF

from ..atomic_write import atomic_path
from ..evaluation.forgetting import BASE, GENERAL, REPORT_FILE, RUN
from ..evaluation.metrics import REPORT_SCORE_NAMES, SCORE_TITLES

PAGE_FILE = "forgetting_report.html"
TEMPLATE = "forgetting_report.html.j2"
DEFAULT_EXAMPLES = 5
# (low, high) inclusive; None: no upper bound.
LENGTH_BUCKETS = ((1, 5), (6, 10), (11, 20), (21, 40), (41, None))  # source words
FREQUENCY_BUCKETS = ((0, 0), (1, 1), (2, 4), (5, 9), (10, 99), (100, None))  # count of the rarest source word


@dataclass
class ReportSettings:
    """Which run's report becomes a page, and where word frequencies come from."""

    positional_fields: ClassVar[tuple[str, ...]] = ("run_dir",)

    run_dir: str | None = field(default=None, metadata={"help": f"a folder holding {REPORT_FILE}"})
    train_source: str | None = field(
        default=None, metadata={
            "metavar": "FILE",
            "help": "source side of the run's training data, one sentence per line: word frequencies are counted "
            "there (default: in each test set itself)",
        },
    )
    output: str | None = field(
        default=None, metadata={"metavar": "PATH", "help": f"where the page goes (default: RUN_DIR/{PAGE_FILE})"}
    )
    examples: int = field(
        default=DEFAULT_EXAMPLES, metadata={"help": "sentences shown per set where the run got most worse, and most better"}
    )

    def __post_init__(self):
        if self.run_dir is None:
            raise ValueError("RUN_DIR: none given; accepted: a folder holding " + REPORT_FILE)
        if self.examples < 0:
            raise ValueError(f"--examples: got {self.examples}; accepted: an integer >= 0")
        if self.train_source is not None and not os.path.isfile(self.train_source):
            raise ValueError(f"--train_source {self.train_source}: no such file")


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


def embedded_plot(report: dict, png_path: str | None) -> str | None:
    """The in-domain/general PNG as a ``data:`` URI: ``png_path`` if given, else drawn now (``None`` without
    matplotlib, or when the report lacks a general or an in-domain set)."""
    if png_path is None:
        from .forgetting_plot import plot_forgetting  # matplotlib: the plots extra

        with tempfile.TemporaryDirectory() as scratch:
            try:
                drawn = plot_forgetting(report, os.path.join(scratch, "plot.png"))
            except ImportError:
                return None
            return None if drawn is None else _data_uri(drawn)
    return _data_uri(png_path)


def _data_uri(path: str) -> str:
    with open(path, "rb") as handle:
        return "data:image/png;base64," + base64.b64encode(handle.read()).decode("ascii")


def render_page(
    report: dict,
    *,
    train_sources: list[str] | None = None,
    train_name: str = "the training data",
    examples: int = DEFAULT_EXAMPLES,
    png_path: str | None = None,
) -> str:
    """The page's HTML. Word frequencies are counted in ``train_sources`` (the run's training sources, called
    ``train_name`` on the page); without them, each test set counts its own."""
    models = [BASE, RUN, *report["compared"]]
    train_counts = None if train_sources is None else word_counts(train_sources)
    frequency_source = train_name if train_sources is not None else "each test set itself"
    details = {name: set_details(entry, models, train_counts, examples) for name, entry in report["sets"].items()}
    environment = Environment(
        loader=FileSystemLoader(os.path.join(os.path.dirname(__file__), "templates")),
        autoescape=select_autoescape(default=True), trim_blocks=True, lstrip_blocks=True,
    )
    return environment.get_template(TEMPLATE).render(
        report=report, models=models, fine_tuned=[RUN, *report["compared"]], details=details,
        metrics=REPORT_SCORE_NAMES, titles=SCORE_TITLES, general=GENERAL, plot=embedded_plot(report, png_path),
        frequency_source=frequency_source, glossary=report.get("glossary"),
    )


def write_page(report: dict, path: str, **options) -> str:
    """``render_page(report, **options)`` written to ``path`` (temporary file, then rename)."""
    html = render_page(report, **options)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(html)
    return path


def run_report(settings: ReportSettings) -> str:
    """``hf-l2mt report``: RUN_DIR/forgetting_report.json → the page; returns where it went."""
    json_path = os.path.join(settings.run_dir, REPORT_FILE)
    if not os.path.isfile(json_path):
        raise ValueError(
            f"RUN_DIR {settings.run_dir}: no {REPORT_FILE}; accepted: a run folder where hf-l2mt evaluate --base, "
            "a recipe run with a general set, or the demo wrote one"
        )
    with open(json_path, encoding="utf-8") as handle:
        try:
            report = json.load(handle)
        except json.JSONDecodeError as err:
            raise ValueError(f"{json_path}: not JSON ({err})") from None
    if not isinstance(report, dict) or "sets" not in report or "compared" not in report:
        raise ValueError(f"{json_path}: not a forgetting report (no 'sets' and 'compared'); write it with "
                         "hf-l2mt evaluate --base")
    options = {}
    if settings.train_source is not None:
        with open(settings.train_source, encoding="utf-8") as handle:
            options = {"train_sources": handle.read().splitlines(),
                       "train_name": f"the training data ({os.path.basename(settings.train_source)})"}
    return write_page(
        report, settings.output or os.path.join(settings.run_dir, PAGE_FILE), examples=settings.examples, **options
    )
