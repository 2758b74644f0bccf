"""The forgetting report's files: ``forgetting_report.json``, ``forgetting_report.png`` and the page,
``forgetting_report.html`` (``hf_l2mt.apps.report_page``).

The PNG puts each model at (in-domain score, general-domain score): the base, this run and every
compared run, so that "learned the domain, kept the rest" is the upper right. With several sets on a
side, a model's point is their mean. matplotlib comes with the ``plots`` extra; without it the JSON is
still written and the PNG is skipped with a message.
"""

import logging
import os

from ..evaluation.forgetting import BASE, GENERAL, REPORT_FILE, RUN, format_report, save_report
from ..evaluation.metrics import SCORE_TITLES
from .plots import import_pyplot, save_figure

logger = logging.getLogger(__name__)

PLOT_FILE = "forgetting_report.png"


def domain_points(report: dict, metric: str = "bleu") -> dict[str, tuple[float, float]]:
    """Model → (mean in-domain score, mean general-domain score); empty when either side has no set."""
    general = [name for name, entry in report["sets"].items() if entry["domain"] == GENERAL]
    in_domain = [name for name in report["sets"] if name not in general]
    if not general or not in_domain:
        return {}
    models = [BASE, RUN, *report["compared"]]

    def mean(model, names):
        return sum(report["sets"][name]["scores"][model][metric] for name in names) / len(names)

    return {model: (mean(model, in_domain), mean(model, general)) for model in models}


def plot_forgetting(report: dict, path: str, metric: str = "bleu") -> str | None:
    """General-domain score against in-domain score per model, as a PNG at ``path``; ``None`` (nothing written)
    when the report has no general set or no in-domain set."""
    points = domain_points(report, metric)
    if not points:
        return None
    plt = import_pyplot()
    figure, axes = plt.subplots(figsize=(5.5, 4.5))
    base_x, base_y = points[BASE]
    axes.axhline(base_y, color="0.8", linewidth=0.8, zorder=0)
    axes.axvline(base_x, color="0.8", linewidth=0.8, zorder=0)
    for model, (x, y) in points.items():
        style = {"marker": "s", "color": "black"} if model == BASE else {"marker": "o"}
        axes.scatter([x], [y], s=50, label=model, **style)
        axes.annotate(model, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=9)
    general = ", ".join(name for name, entry in report["sets"].items() if entry["domain"] == GENERAL)
    in_domain = ", ".join(name for name, entry in report["sets"].items() if entry["domain"] != GENERAL)
    title = SCORE_TITLES[metric]
    axes.set_xlabel(f"in-domain {title} ({in_domain})")
    axes.set_ylabel(f"general-domain {title} ({general})")
    axes.set_title("What it kept and what it learned")
    axes.legend(loc="best", fontsize=8)
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)
    return path


def write_report_files(
    report: dict, output_dir: str, metric: str = "bleu", **page_options
) -> dict[str, str | None]:
    """``forgetting_report.json``, with matplotlib ``forgetting_report.png``, and ``forgetting_report.html`` in
    ``output_dir``; ``page_options`` go to ``report_page.render_page`` (the training sources, for word frequencies)."""
    from .report_page import PAGE_FILE, write_page

    paths = {"json": save_report(report, os.path.join(output_dir, REPORT_FILE)), "png": None}
    try:
        paths["png"] = plot_forgetting(report, os.path.join(output_dir, PLOT_FILE), metric)
    except ImportError as err:
        logger.warning("forgetting report: no PNG (%s)", err)
    paths["html"] = write_page(report, os.path.join(output_dir, PAGE_FILE), png_path=paths["png"], **page_options)
    return paths


def log_report(report: dict, paths: dict) -> str:
    """The table, then where the files went: what ``hf-l2mt evaluate --base`` prints and a run logs."""
    where = [f"every number, with sacreBLEU signatures: {paths['json']}"]
    if paths["png"]:
        where.append(f"general-domain against in-domain score: {paths['png']}")
    if paths.get("html"):
        where.append(f"the page to look at: {paths['html']}")
    return format_report(report) + "\n\n" + "\n".join(where)
