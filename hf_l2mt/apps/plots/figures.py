"""PNG plots of a run's logs and of a λ search's Pareto front (``hf-l2mt plot``, ``hf-l2mt search``).

A run's logs are the Trainer's ``log_history`` in ``trainer_state.json``, read from the run folder or,
when the run saved none there, from its newest ``checkpoint-*``. The plots pick their keys by name, so
a regularizer added later shows up without changes here:

| file                | keys                                                           |
|---------------------|----------------------------------------------------------------|
| ``loss.png``        | ``loss`` (the task loss)                                       |
| ``penalties.png``   | every ``*_penalty`` key and ``kl_to_base``                     |
| ``strengths.png``   | ``weight_decay`` and every ``*_lambda`` key (after schedules)  |
| ``distance.png``    | every ``*_distance`` key (``l2sp_distance`` = ‖θ − θ₀‖₂)       |
| ``eval_bleu.png``   | ``eval_<set>_bleu`` of each evaluation set (``eval_bleu``: one)|

matplotlib comes with the ``plots`` extra (``pip install "hf_l2mt[plots]"``) and is imported only here.
"""

import json
import os
import re
from dataclasses import dataclass, field
from typing import ClassVar

from ...atomic_write import atomic_path
from ...evaluation.report_names import HIGHER_IS_BETTER

STATE_FILE = "trainer_state.json"


@dataclass
class PlotSettings:
    """The flags of ``hf-l2mt plot``."""

    positional_fields: ClassVar[tuple[str, ...]] = ("run_dir",)

    run_dir: str | None = field(default=None, metadata={"help": "a run's output_dir, or one of its checkpoint-* folders"})
    output_dir: str | None = field(
        default=None, metadata={"metavar": "DIR", "help": "where the PNGs go (default: RUN_DIR/plots)"}
    )
    metric: str = field(default="bleu", metadata={"choices": HIGHER_IS_BETTER, "help": "evaluation score plotted"})


def import_pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend, or an error saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError('plots need matplotlib: pip install "hf_l2mt[plots]"') from None
    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def find_trainer_state(run_dir: str) -> str:
    """``RUN_DIR/trainer_state.json``, else the one of the checkpoint with the most updates."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR  # imports torch: only when a run is plotted

    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"RUN_DIR {run_dir}: no such folder")
    direct = os.path.join(run_dir, STATE_FILE)
    if os.path.isfile(direct):
        return direct
    pattern = re.compile(rf"{PREFIX_CHECKPOINT_DIR}-(\d+)")
    checkpoints = sorted(
        (int(match.group(1)), name) for name in os.listdir(run_dir) if (match := pattern.fullmatch(name))
    )
    for _, name in reversed(checkpoints):
        path = os.path.join(run_dir, name, STATE_FILE)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"RUN_DIR {run_dir}: no {STATE_FILE} in it nor in a {PREFIX_CHECKPOINT_DIR}-* folder; the Trainer writes "
        "it with each checkpoint (save_strategy) and with trainer.save_state()"
    )


def read_log_history(run_dir: str) -> list[dict]:
    path = find_trainer_state(run_dir)
    with open(path, encoding="utf-8") as handle:
        try:
            return json.load(handle)["log_history"]
        except (json.JSONDecodeError, KeyError) as err:
            raise ValueError(f"{path}: not a Trainer state with a log_history ({err})") from None


def series(log_history: list[dict], key: str) -> tuple[list[int], list[float]]:
    """``(steps, values)`` of ``key`` in the entries that have it."""
    entries = [entry for entry in log_history if key in entry]
    return [entry["step"] for entry in entries], [float(entry[key]) for entry in entries]


def logged_keys(log_history: list[dict]) -> list[str]:
    return sorted({key for entry in log_history for key in entry})


def plot_groups(log_history: list[dict], metric: str = "bleu") -> dict[str, dict]:
    """File stem → ``{"title", "ylabel", "keys": {label: key}}`` for the keys this log has."""
    keys = logged_keys(log_history)
    eval_key = re.compile(rf"eval_(?:(.+)_)?{re.escape(metric)}")
    groups = {
        "loss": ("task loss", "loss", {key: key for key in keys if key == "loss"}),
        "penalties": ("penalties", "penalty", {k: k for k in keys if k.endswith("_penalty") or k == "kl_to_base"}),
        "strengths": ("regularization strengths (after schedules)", "strength",
                      {k: k for k in keys if k == "weight_decay" or k.endswith("_lambda")}),
        "distance": ("distance to the anchor", "‖θ − θ₀‖₂", {k: k for k in keys if k.endswith("_distance")}),
        f"eval_{metric}": (f"{metric} across evaluations", metric,
                           {(m.group(1) or "eval"): k for k in keys if (m := eval_key.fullmatch(k))}),
    }
    return {stem: {"title": t, "ylabel": y, "keys": ks} for stem, (t, y, ks) in groups.items() if ks}


def save_figure(figure, path: str) -> str:
    """Save as PNG through a temporary file, so a failed write leaves an older plot whole."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    return path


def plot_run(run_dir: str, output_dir: str | None = None, metric: str = "bleu") -> list[str]:
    """One PNG per group of ``plot_groups`` into ``output_dir`` (default ``RUN_DIR/plots``); returns the paths."""
    log_history = read_log_history(run_dir)
    groups = plot_groups(log_history, metric)
    if not groups:
        raise ValueError(f"RUN_DIR {run_dir}: the log has none of the plotted keys; it has {logged_keys(log_history)}")
    plt = import_pyplot()
    output_dir = output_dir or os.path.join(run_dir, "plots")
    os.makedirs(output_dir, exist_ok=True)
    paths = []
    for stem, group in groups.items():
        figure, axes = plt.subplots(figsize=(7, 4))
        for label, key in group["keys"].items():
            steps, values = series(log_history, key)
            axes.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3, label=label)
        axes.set(title=group["title"], xlabel="update", ylabel=group["ylabel"])
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        paths.append(save_figure(figure, os.path.join(output_dir, f"{stem}.png")))
        plt.close(figure)
    return paths


def plot_pareto_front(rows: list[dict], path: str, metric: str, marks: dict[str, tuple[float, float]]) -> str:
    """General-domain against in-domain score of every completed trial, the Pareto front joined and labelled
    with its λ (and schedule, unless constant), and ``marks`` (name → ``(in_domain, general)``, e.g. the base model) as stars."""
    plt = import_pyplot()
    figure, axes = plt.subplots(figsize=(7, 5))
    finished = [row for row in rows if row["state"] == "COMPLETE"]
    front = sorted((row for row in finished if row["is_pareto"]), key=lambda row: row[f"in_domain_{metric}"])
    axes.scatter([r[f"in_domain_{metric}"] for r in finished], [r[f"general_{metric}"] for r in finished],
                 color="0.6", label="trials")
    axes.plot([r[f"in_domain_{metric}"] for r in front], [r[f"general_{metric}"] for r in front],
              color="tab:red", marker="o", label="Pareto front")
    for row in front:
        schedule = "" if row.get("l2sp_schedule", "constant") == "constant" else f" {row['l2sp_schedule']}"
        axes.annotate(f"λ={row['l2sp_lambda']:.3g}{schedule}", (row[f"in_domain_{metric}"], row[f"general_{metric}"]),
                      textcoords="offset points", xytext=(4, 4), fontsize=8)
    for (name, (in_domain, general)), color in zip(marks.items(), ("tab:blue", "tab:green", "tab:purple")):
        axes.scatter([in_domain], [general], marker="*", s=160, color=color, label=name, zorder=3)
    axes.set(title="λ search: Pareto front", xlabel=f"in-domain {metric}", ylabel=f"general-domain {metric}")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)
    return path
