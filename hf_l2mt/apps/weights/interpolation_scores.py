"""Every interpolated model scored against the base as ``hf-l2mt evaluate --base`` scores a fine-tune: one forgetting
report (``hf_l2mt.evaluation.forgetting.build_report``) whose compared runs are the α folders, read back as one
table α → in-domain and general-domain score with the change's 95 % interval; then the forgetting budget
(``budget.pick_alpha``). Translations go through the translation cache, so scoring again costs no generation.
The report's own plot (``hf_l2mt.apps.report.plot``) draws every α at (in-domain, general-domain score): the front
the interpolation traces, written as ``interpolation_front.png``.
"""

import json
import logging
import os

from .budget import pick_alpha

logger = logging.getLogger("hf_l2mt")

SCORES_FILE = "interpolation_scores.json"
CHOSEN_FILE = "chosen.json"
FRONT_FILE = "interpolation_front.png"


def alpha_folder(alpha: float) -> str:
    """``alpha-0.4`` for 0.4: the folder (and model name) of one α (``repr``, so two α never share a name)."""
    return f"alpha-{alpha!r}"


def held_out_sets(run_dir: str, test: list[str], general_sets: list[str], budget: dict) -> dict | None:
    """``{"sources", "references", "general"}`` from ``--test`` files, else from the sets that
    ``run_dir/forgetting_report.json`` keeps with their sentences; None when there are none and no ``budget``
    needs them. A drop budget needs a general-domain set, a gain budget an in-domain one."""
    sets = _read_sets(run_dir, test, general_sets)
    if sets is None and budget:
        raise ValueError(
            f"--{'/--'.join(budget)}: no held-out sets: no --test given, and "
            f"{os.path.join(run_dir, 'forgetting_report.json')!r} keeps no set's sentences; accepted: --test "
            "NAME=SOURCE_FILE,REFERENCE_FILE with --general_sets NAME"
        )
    if sets is not None:
        names = ", ".join(sets["references"])
        if "max_general_drop" in budget and not sets["general"]:
            raise ValueError(f"--max_general_drop: none of the held-out sets ({names}) is general domain; accepted: "
                             "--general_sets naming one of them")
        if "min_gain_kept" in budget and len(sets["general"]) == len(sets["references"]):
            raise ValueError(f"--min_gain_kept: every held-out set ({names}) is general domain, none in-domain; "
                             "accepted: --general_sets naming only the general-domain ones")
    return sets


def _read_sets(run_dir: str, test: list[str], general_sets: list[str]) -> dict | None:
    from ...evaluation.forgetting import kept_sets
    from ..translation.commands import parse_test_set, read_test_pairs

    if test:
        sources, references = read_test_pairs(dict(parse_test_set(text) for text in test))
        return {"sources": sources, "references": references,
                "general": [name for name in references if name in general_sets]}
    kept = kept_sets(run_dir, "give --test NAME=SOURCE_FILE,REFERENCE_FILE")[1]
    if not kept:
        return None
    return {"sources": {name: entry["sentences"]["source"] for name, entry in kept.items()},
            "references": {name: entry["sentences"]["reference"] for name, entry in kept.items()},
            "general": [name for name, entry in kept.items() if entry.get("domain") == "general"]}


def alpha_rows(report: dict, alphas: list[float], metric: str) -> list[dict]:
    """One row per α (the base at 0 and the fine-tune at 1 included): per set the score and the change from the base
    with its interval, the mean in-domain gain and the worst general-domain drop."""
    from ...evaluation.forgetting import BASE, GENERAL, RUN

    names = {0.0: BASE, **{alpha: alpha_folder(alpha) for alpha in alphas}, 1.0: RUN}
    rows = []
    for alpha in sorted(names):
        name, sets = names[alpha], {}
        for set_name, entry in report["sets"].items():
            if name == BASE:
                score = entry["scores"][BASE][metric]
                sets[set_name] = {"score": score, "change": 0.0, "ci_low": 0.0, "ci_high": 0.0, "significant": False}
            else:
                change = entry["changes"][name][metric]
                sets[set_name] = {key: change[key] for key in ("score", "change", "ci_low", "ci_high", "significant")}
        general = [set_name for set_name, entry in report["sets"].items() if entry["domain"] == GENERAL]
        in_domain = [set_name for set_name in report["sets"] if set_name not in general]
        rows.append({
            "alpha": alpha, "model": report["models"][name], "sets": sets,
            "in_domain_gain": sum(sets[n]["change"] for n in in_domain) / len(in_domain) if in_domain else 0.0,
            "general_drop": max((-sets[n]["change"] for n in general), default=0.0),
        })
    return rows


def format_table(rows: list[dict], report: dict, metric: str) -> str:
    from ...evaluation.forgetting import GENERAL
    from ...evaluation.report_names import SCORE_TITLES

    names = list(report["sets"])
    headers = ["alpha"] + [f"{name} ({'general' if report['sets'][name]['domain'] == GENERAL else 'in-domain'})"
                           for name in names]
    lines = [headers]
    for row in rows:
        cells = [f"{row['alpha']:g}"]
        for name in names:
            entry = row["sets"][name]
            mark = "*" if entry["significant"] else " "
            cells.append(f"{entry['score']:.2f} {entry['change']:+.2f} [{entry['ci_low']:+.2f}, "
                         f"{entry['ci_high']:+.2f}]{mark}")
        lines.append(cells)
    widths = [max(len(line[column]) for line in lines) for column in range(len(headers))]
    text = "\n".join("  ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in lines)
    return (f"{SCORE_TITLES[metric]} of each alpha, its change from the base [95 % interval] (* significant; "
            f"alpha 0 is the base, 1 the fine-tune):\n{text}")


def score_alphas(settings, targets: dict[float, str], sets: dict) -> str:
    """Translate the held-out sets with the base, the fine-tune and every α; write ``interpolation_scores.json``
    (and ``chosen.json`` when a budget picks an α) beside the α folders; return the text to print."""
    from ...evaluation.forgetting import BASE, RUN, build_report
    from ...evaluation.translation_cache import cached_translations
    from ..translation.commands import default_device, without_weight_loading_bar

    models = {BASE: settings.base, RUN: settings.run_dir,
              **{alpha_folder(alpha): target for alpha, target in targets.items()}}
    generation = {"batch_size": settings.batch_size, "num_beams": settings.num_beams,
                  "max_new_tokens": settings.max_new_tokens, "source_prefix": settings.source_prefix,
                  "device": default_device(settings.device)}
    translations = {}
    with without_weight_loading_bar():
        for name, model_dir in models.items():
            translations[name], _ = cached_translations(model_dir, sets["sources"], **generation)
    report = build_report(sets["references"], translations, sets["general"], models=models,
                          seed=settings.bootstrap_seed, resamples=settings.bootstrap_resamples,
                          headline_metric=settings.metric)
    rows = alpha_rows(report, list(targets), settings.metric)
    result = {"metric": settings.metric, "rows": rows, "report": report}
    text = format_table(rows, report, settings.metric)
    root = settings.target_root()
    if settings.budget():
        # The base (alpha 0) meets any drop budget and is no answer: the user has it already.
        decision = pick_alpha([row for row in rows if row["alpha"] > 0], **settings.budget())
        chosen = next((row["model"] for row in rows if row["alpha"] == decision["alpha"]), None)
        result["budget"] = {**settings.budget(), **decision, "model": chosen}
        if chosen is not None:
            with open(os.path.join(root, CHOSEN_FILE), "w", encoding="utf-8") as handle:
                json.dump(result["budget"], handle, indent=2)
                handle.write("\n")
            text += f"\n\nchosen: {chosen}: {decision['why']}"
        else:
            text += f"\n\nnone chosen: {decision['why']}"
    path = os.path.join(root, SCORES_FILE)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    text += f"\n\nevery number, with sacreBLEU signatures: {path}"
    from ..report.plot import plot_forgetting

    try:
        front = plot_forgetting(report, os.path.join(root, FRONT_FILE), settings.metric)
    except ImportError as err:
        logger.warning("interpolation: no %s (%s)", FRONT_FILE, err)
        front = None
    if front is not None:
        text += f"\ngeneral-domain against in-domain score of every alpha: {front}"
    return text
