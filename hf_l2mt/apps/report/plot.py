"""The forgetting report's plot, ``forgetting_report.png``, written with the JSON and the page by ``files`` and
embedded in the page (``page``).

The PNG puts each model at (in-domain score, general-domain score) in the report's headline score (chrF
unless the report names another): the base, this run and every compared run, so that "learned the domain,
kept the rest" is the upper right. With several sets on a side, a model's point is their mean. Each model
has its own marker and its name and numbers go in the legend below the axes, not next to the point: two
models that score alike (the base and plain fine-tuning both at BLEU 0) would print their names over each
other. matplotlib comes with the ``plots`` extra; without it the JSON is still written and the PNG is skipped
with a message.
"""

from ...evaluation.forgetting import BASE, DEFAULT_HEADLINE_METRIC, GENERAL, RUN
from ...evaluation.report_names import SCORE_TITLES
from ..plots.figures import import_pyplot, save_figure

PLOT_FILE = "forgetting_report.png"
# Hollow, and smaller for each later model, so that points at the same place stay visible one inside the other.
MARKERS = ("s", "o", "^", "D", "v", "P", "X")


def domain_points(report: dict, metric: str) -> dict[str, tuple[float, float]]:
    """Model → (mean in-domain score, mean general-domain score); empty when either side has no set."""
    general = [name for name, entry in report["sets"].items() if entry["domain"] == GENERAL]
    in_domain = [name for name in report["sets"] if name not in general]
    if not general or not in_domain:
        return {}
    models = [BASE, RUN, *report["compared"]]

    def mean(model, names):
        return sum(report["sets"][name]["scores"][model][metric] for name in names) / len(names)

    return {model: (mean(model, in_domain), mean(model, general)) for model in models}


def plot_forgetting(report: dict, path: str, metric: str | None = None) -> str | None:
    """General-domain score against in-domain score per model in ``metric`` (default: the report's headline), as a
    PNG at ``path``; ``None`` (nothing written) when the report has no general set or no in-domain set."""
    metric = metric or report.get("headline_metric", DEFAULT_HEADLINE_METRIC)
    points = domain_points(report, metric)
    if not points:
        return None
    plt = import_pyplot()
    # Taller with more than 7 models, so that the legend below does not squeeze the axes (an interpolation has 11).
    figure, axes = plt.subplots(figsize=(5.5, max(5.0, 3.4 + 0.22 * len(points))))
    base_x, base_y = points[BASE]
    axes.axhline(base_y, color="0.8", linewidth=0.8, zorder=0)
    axes.axvline(base_x, color="0.8", linewidth=0.8, zorder=0)
    axes.margins(0.1)  # a point on the frame would hide half its marker
    for rank, (model, (x, y)) in enumerate(points.items()):
        color = "black" if model == BASE else f"C{rank - 1}"
        # Smaller for each later model, down to a size that still shows (an interpolation has 11 models).
        axes.scatter([x], [y], s=max(140 - 25 * rank, 25), marker=MARKERS[rank % len(MARKERS)], facecolors="none",
                     edgecolors=color, linewidths=1.6, label=f"{model}: in-domain {x:.2f}, general {y:.2f}")
    general = ", ".join(name for name, entry in report["sets"].items() if entry["domain"] == GENERAL)
    in_domain = ", ".join(name for name, entry in report["sets"].items() if entry["domain"] != GENERAL)
    title = SCORE_TITLES[metric]
    axes.set_xlabel(f"in-domain {title} ({in_domain})")
    axes.set_ylabel(f"general-domain {title} ({general})")
    axes.set_title(f"What it kept and what it learned ({title})")
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), fontsize=8, frameon=False)
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)
    return path
