"""General-domain score against in-domain score, one point per fine-tuning variant, the base marked.

Reads the ``results.json`` that ``benchmarks/domain_adaptation.py`` writes (which also calls
``plot_forgetting`` itself):

    python -m benchmarks.plot_forgetting outputs/domain_adaptation/numbers_year/results.json --metric chrf
"""

import argparse
import json

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

FAMILY_STYLE = {
    "plain": ("black", "o"), "weight_decay": ("tab:gray", "s"), "l2sp": ("tab:blue", "o"),
    "l2sp_sigmoid": ("tab:orange", "^"), "l2sp_decoupled": ("tab:green", "D"), "mixed": ("tab:red", "P"),
    "ewc": ("tab:cyan", "v"), "kl": ("tab:brown", "<"), "l1_anchor": ("tab:pink", ">"),
    "lora": ("tab:olive", "X"), "lora_l2sp": ("tab:purple", "X"), "average": ("tab:gray", "*"),
}


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """The names whose (in-domain, general) point no other point matches or beats on both and beats on one,
    ordered by in-domain score: the variants worth choosing between."""
    def dominated(a, b):
        return b[0] >= a[0] and b[1] >= a[1] and b != a

    front = [name for name, point in points.items() if not any(dominated(point, other) for other in points.values())]
    return sorted(front, key=lambda name: points[name])


def result_front(result: dict, metric: str) -> tuple[list[str], dict[str, tuple[float, float]]]:
    """The Pareto front of ``result``'s mean (in-domain, general) ``metric`` per variant, the base among the
    points: the names in ``pareto_front``'s order, and every point by name."""
    points = {name: (row[f"domain_{metric}"][0], row[f"general_{metric}"][0]) for name, row in result["summary"].items()}
    points["base"] = (result["base"]["domain"][metric], result["base"]["general"][metric])
    return pareto_front(points), points


def plot_forgetting(result: dict, path: str, metric: str = "chrf", title: str = "") -> str:
    """Save the plot of ``result`` (as returned by ``domain_adaptation.main``) to ``path``; mean ± std over seeds,
    the Pareto front of the means (the base among them) as a dashed line."""
    figure, axes = plt.subplots(figsize=(7, 5))
    base = result["base"]
    axes.scatter([base["domain"][metric]], [base["general"][metric]], marker="*", s=250, color="gold",
                 edgecolor="black", zorder=3, label="base")
    families = {v["name"]: v["family"] for v in result["variants"]}
    labelled = set()
    for name, row in result["summary"].items():
        family = families[name]
        color, marker = FAMILY_STYLE.get(family, ("tab:purple", "x"))
        (x, x_std), (y, y_std) = row[f"domain_{metric}"], row[f"general_{metric}"]
        axes.errorbar(x, y, xerr=x_std, yerr=y_std, fmt=marker, color=color, capsize=2,
                      label=None if family in labelled else family)
        labelled.add(family)
        if name != family:
            axes.annotate(name.split()[-1], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    names, points = result_front(result, metric)
    front = [points[name] for name in names]
    axes.plot([x for x, _ in front], [y for _, y in front], "--", color="gray", linewidth=1, zorder=1,
              label="Pareto front")
    axes.set_xlabel(f"in-domain {metric} (held out)")
    axes.set_ylabel(f"general-domain {metric} (held out)")
    axes.set_title(title or "forgetting: general vs in-domain")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="results.json written by benchmarks/domain_adaptation.py")
    parser.add_argument("--metric", choices=["exact_match", "chrf", "bleu"], default="chrf")
    parser.add_argument("--output", help="PNG path (default: next to results.json, forgetting_<metric>.png)")
    opts = parser.parse_args(argv)
    with open(opts.results, encoding="utf-8") as handle:
        result = json.load(handle)
    output = opts.output or opts.results.rsplit("/", 1)[0] + f"/forgetting_{opts.metric}.png"
    return plot_forgetting(result, output, metric=opts.metric)


if __name__ == "__main__":
    main()
