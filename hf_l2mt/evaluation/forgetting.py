"""The forgetting report: what a fine-tuned model kept of its base and what it learned, with significance.

``build_report`` takes the references of each test set and each model's translations of them (the
base, this run and any compared runs) and returns one dict, the only source of every number that the
terminal table (``format_report``), ``forgetting_report.json`` (``save_report``), the model card and the
PNG show. Per set and model: BLEU, chrF, chrF++, TER and exact match with sacreBLEU signatures; per
set and fine-tuned model: the change against the base with its 95 % interval and paired-bootstrap
p-value (``hf_l2mt.evaluation.significance``). Against each compared run (read it as the plain,
unregularized fine-tune), the run's share of the forgetting recovered on general sets,
(run − plain) / (base − plain), and of the in-domain gain kept, (run − base) / (plain − base).
``verdict`` answers "did it forget?" in one sentence from those numbers, in the report's headline score
(chrF unless ``build_report`` is told otherwise): the table ends with it and the page opens with it.
Given the source sentences, per set and model: the glossary's term use (``hf_l2mt.evaluation.glossary``,
with a glossary) and the placeholder accuracy (``hf_l2mt.evaluation.placeholders``, when a source of the set
has a placeholder).
"""

import json
import os
import textwrap

from ..atomic_write import atomic_path
from .glossary import Glossary, term_use
from .metrics import score_translations
from .placeholders import any_placeholder, placeholder_accuracy
from .report_names import REPORT_FILE, REPORT_SCORE_NAMES, SCORE_TITLES
from .significance import DEFAULT_RESAMPLES, DEFAULT_SEED, SIGNIFICANCE_LEVEL, format_p_value, paired_bootstrap

BASE, RUN = "base", "run"
GENERAL, IN_DOMAIN = "general", "in_domain"
# BLEU is 0 wherever an output is one word (the demo's German numbers): chrF reads every task.
DEFAULT_HEADLINE_METRIC = "chrf"


def build_report(
    references: dict[str, list[str]],
    translations: dict[str, dict[str, list[str]]],
    general_sets,
    *,
    models: dict[str, str] | None = None,
    seed: int = DEFAULT_SEED,
    resamples: int = DEFAULT_RESAMPLES,
    command: str | None = None,
    sources: dict[str, list[str]] | None = None,
    glossary: Glossary | None = None,
    headline_metric: str = DEFAULT_HEADLINE_METRIC,
) -> dict:
    """The report of ``translations`` (model name → set → translations; ``"base"`` and ``"run"`` required,
    any other name is a compared run) against ``references`` (set → references).

    ``general_sets`` names the sets that are held-out general domain; the others are in-domain.
    ``models`` (name → directory or Hub id) and ``command`` are recorded as given. With ``sources`` (set →
    source sentences), each set also keeps its sentences, for the page (``hf_l2mt.apps.report.page``):
    ``"sentences": {"source", "reference", "translations": {model: [...]}}``, and the placeholder accuracy
    when its sources have a placeholder; with ``glossary``, the term use of every set. ``headline_metric`` is
    the score that ``verdict`` and the plot speak of.
    """
    check_headline_metric(headline_metric)
    check_inputs(references, translations, general_sets)
    check_sources(references, sources, glossary)
    compared = [name for name in translations if name not in (BASE, RUN)]
    sets = {}
    bootstrap = {}
    for name, refs in references.items():
        scores = {model: score_translations(translations[model][name], refs) for model in translations}
        fine_tuned = {model: translations[model][name] for model in (RUN, *compared)}
        bootstrap = paired_bootstrap(translations[BASE][name], fine_tuned, refs, seed=seed, resamples=resamples)
        sets[name] = {
            "domain": GENERAL if name in general_sets else IN_DOMAIN,
            "num_sentences": len(refs),
            "scores": scores,
            "changes": bootstrap["systems"],
            "bootstrap_signatures": bootstrap["signatures"],
        }
        if sources is not None:
            sets[name]["sentences"] = {
                "source": list(sources[name]),
                "reference": list(refs),
                "translations": {model: list(translations[model][name]) for model in translations},
            }
        if glossary is not None:
            sets[name]["glossary"] = {
                model: term_use(sources[name], translations[model][name], glossary) for model in translations
            }
        if sources is not None and any_placeholder(sources[name]):
            sets[name]["placeholders"] = {
                model: placeholder_accuracy(sources[name], translations[model][name]) for model in translations
            }
    return {
        "command": command,
        "models": dict(models or {}),
        "headline_metric": headline_metric,
        "compared": compared,
        "general_sets": [name for name in references if name in general_sets],
        "bootstrap": {key: bootstrap[key] for key in ("method", "seed", "resamples", "confidence")}
        | {"significance_level": SIGNIFICANCE_LEVEL},
        "glossary": glossary.describe() if glossary is not None else None,
        "sets": sets,
        "shares": {
            other: {name: set_shares(sets[name], other) for name in references} for other in compared
        },
    }


def check_headline_metric(metric: str, flag: str = "headline_metric") -> None:
    if metric not in REPORT_SCORE_NAMES:
        raise ValueError(f"{flag}: got {metric!r}; accepted: {', '.join(REPORT_SCORE_NAMES)}")


def check_inputs(references: dict, translations: dict, general_sets) -> None:
    """Errors that name the model, the set and what is there."""
    for required in (BASE, RUN):
        if required not in translations:
            raise ValueError(f"build_report: no translations by {required!r}; given: {', '.join(translations)}")
    if not references:
        raise ValueError("build_report: no test sets")
    unknown = [name for name in general_sets if name not in references]
    if unknown:
        raise ValueError(
            f"general sets {', '.join(map(repr, unknown))} are not among the test sets ({', '.join(references)})"
        )
    for model, by_set in translations.items():
        missing = [name for name in references if name not in by_set]
        if missing:
            raise ValueError(
                f"{model!r} has no translations of the set(s) {', '.join(map(repr, missing))} (it was scored on: "
                f"{', '.join(by_set) or 'none'}); every model must translate every test set"
            )
        for name, refs in references.items():
            if len(by_set[name]) != len(refs):
                raise ValueError(
                    f"{model!r} has {len(by_set[name])} translations of set {name!r}, which has {len(refs)} "
                    "references; accepted: one translation per reference"
                )


def check_sources(references: dict, sources: dict | None, glossary: Glossary | None) -> None:
    """Sources, when given, must match the references set by set; a glossary needs them."""
    if sources is None:
        if glossary is not None:
            raise ValueError("build_report: a glossary needs the source sentences (sources=); none were given")
        return
    for name, refs in references.items():
        if len(sources.get(name, ())) != len(refs):
            raise ValueError(
                f"build_report: set {name!r} has {len(sources.get(name, ()))} source sentences and {len(refs)} "
                "references; accepted: one source per reference"
            )


def recovered_share(base: float, plain: float, run: float) -> dict:
    """The share of the plain run's forgetting that ``run`` recovered: (run − plain) / (base − plain).

    Undefined when the plain run scores as the base (it forgot nothing); the result then says so.
    """
    if base == plain:
        return {"share": None, "why": "undefined: the plain run scores as the base (nothing forgotten)"}
    return {"share": (run - plain) / (base - plain), "why": "(run - plain) / (base - plain)"}


def gain_kept(base: float, plain: float, run: float) -> dict:
    """The share of the plain run's in-domain gain that ``run`` kept: (run − base) / (plain − base)."""
    if base == plain:
        return {"share": None, "why": "undefined: the plain run scores as the base (nothing gained)"}
    return {"share": (run - base) / (plain - base), "why": "(run - base) / (plain - base)"}


def set_shares(entry: dict, other: str) -> dict:
    """Per score: the forgetting recovered (general set) or the gain kept (in-domain set) against ``other``."""
    share = recovered_share if entry["domain"] == GENERAL else gain_kept
    scores = entry["scores"]
    kind = "forgetting_recovered" if entry["domain"] == GENERAL else "in_domain_gain_kept"
    return {
        metric: {"kind": kind, **share(scores[BASE][metric], scores[other][metric], scores[RUN][metric])}
        for metric in REPORT_SCORE_NAMES
    }


def save_report(report: dict, path: str) -> str:
    """Write ``report`` as JSON (temporary file, then rename)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    return path


def kept_sets(run_dir: str, remedy: str) -> tuple[str, dict[str, dict] | None]:
    """``RUN_DIR/forgetting_report.json`` and its sets that keep their sentences (``{name: entry}``, in the report's
    order; ``None`` when the run has no report), for commands that score again on the run's held-out sets. A file
    that is not JSON is an error naming it and ``remedy``, what the user can give instead."""
    path = os.path.join(run_dir, REPORT_FILE)
    if not os.path.isfile(path):
        return path, None
    with open(path, encoding="utf-8") as handle:
        try:
            report = json.load(handle)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not JSON ({err}); {remedy}") from None
    sets = report.get("sets") if isinstance(report, dict) else None
    return path, {name: entry for name, entry in (sets or {}).items()
                  if isinstance(entry, dict) and entry.get("sentences", {}).get("source")}


def format_report(report: dict) -> str:
    """One table per set: each score for the base and each fine-tuned model, the change with its 95 % interval
    (``*``: the interval leaves 0 out), the p-value, and the share recovered or kept against each compared run;
    then the footnote and the ``verdict``."""
    blocks = []
    for name, entry in report["sets"].items():
        fine_tuned = [RUN, *report["compared"]]
        headers = ["score", BASE]
        for model in fine_tuned:
            headers += [model, "change [95 % CI]", "p"]
        share_label = "recovered" if entry["domain"] == GENERAL else "gain kept"
        headers += [f"{share_label} vs {other}" for other in report["compared"]]
        rows = [headers]
        for metric in REPORT_SCORE_NAMES:
            row = [SCORE_TITLES[metric], f"{entry['scores'][BASE][metric]:.2f}"]
            for model in fine_tuned:
                change = entry["changes"][model][metric]
                mark = "*" if change["significant"] else " "
                row += [
                    f"{change['score']:.2f}",
                    f"{change['change']:+.2f} [{change['ci_low']:+.2f}, {change['ci_high']:+.2f}]{mark}",
                    format_p_value(change["p_value"], report["bootstrap"]["resamples"]),
                ]
            row += [_share_cell(report["shares"][other][name][metric]["share"]) for other in report["compared"]]
            rows.append(row)
        widths = [max(len(row[column]) for row in rows) for column in range(len(headers))]
        lines = [
            "  ".join([row[0].ljust(widths[0]), *(cell.rjust(width) for cell, width in zip(row[1:], widths[1:]))])
            for row in rows
        ]
        domain = "general domain" if entry["domain"] == GENERAL else "in-domain"
        blocks.append(
            f"{name} ({domain}, {entry['num_sentences']} sentences)\n" + "\n".join(lines + _check_lines(entry))
        )
    bootstrap = report["bootstrap"]
    blocks.append(
        f"* significant: the {100 * bootstrap['confidence']:.0f} % interval leaves 0 out (p <= "
        f"{bootstrap['significance_level']:g}); paired bootstrap, {bootstrap['resamples']} resamples, "
        f"seed {bootstrap['seed']}; TER: lower is better. "
        + ("'n/a': undefined, the compared run scores as the base." if report["compared"] else "")
    )
    blocks.append(textwrap.fill(verdict(report), width=110, break_long_words=False, break_on_hyphens=False))
    return "\n\n".join(block.rstrip() for block in blocks)


def verdict(report: dict, metric: str | None = None) -> str:
    """"Did it forget?" answered in one sentence from the report's numbers in ``metric`` (default: its headline):
    this run's change on every set with its interval and significance, then the share of the loss it recovered
    and of the gain it kept against each compared run."""
    metric = metric or report.get("headline_metric", DEFAULT_HEADLINE_METRIC)
    title, worse = SCORE_TITLES[metric], (1 if metric == "ter" else -1)  # TER: lower is better
    resamples = report["bootstrap"]["resamples"]
    general = {name: entry["changes"][RUN][metric] for name, entry in report["sets"].items()
               if entry["domain"] == GENERAL}
    if any(change["significant"] and worse * change["change"] > 0 for change in general.values()):
        answer = "Yes"
    elif any(worse * change["change"] > 0 for change in general.values()):
        answer = "Not significantly"
    else:
        answer = "No" if general else "No general-domain set to tell"
    # General sets first: they answer the question; the in-domain sets say what it cost.
    sets = sorted(report["sets"].items(), key=lambda item: item[1]["domain"] != GENERAL)
    clauses = []
    for name, entry in sets:
        change = entry["changes"][RUN][metric]
        decided = "significant" if change["significant"] else "not significant"
        clauses.append(
            f"{'general domain' if entry['domain'] == GENERAL else 'in-domain'} ({name}): {title} "
            f"{change['change']:+.2f} [{change['ci_low']:+.2f}, {change['ci_high']:+.2f}], {decided} "
            f"(p {_p_phrase(format_p_value(change['p_value'], resamples))})"
        )
    for other in report["compared"]:
        shares = []
        for name, entry in sets:
            share = report["shares"][other][name][metric]["share"]
            general_set = entry["domain"] == GENERAL
            # A share of a loss (gain) that the compared run did not make would read as nonsense: say so instead.
            if share is None or worse * entry["changes"][other][metric]["change"] * (1 if general_set else -1) <= 0:
                shares.append(f"has nothing to {'recover' if general_set else 'keep'} on {name} ({other} "
                              f"{'lost' if general_set else 'gained'} nothing there)")
            else:
                shares.append(f"{'recovers' if general_set else 'keeps'} {_share_cell(share)} of the "
                              f"{'loss' if general_set else 'gain'} on {name}")
        named = f"{other} ({report['models'][other]})" if other in report["models"] else other
        clauses.append(f"against {named}, it " + " and ".join(shares))
    return f"Did it forget? {answer}: " + "; ".join(clauses) + "."


def _p_phrase(p_text: str) -> str:
    return p_text if p_text.startswith("<") else f"= {p_text}"


def _check_lines(entry: dict) -> list[str]:
    """Below a set's scores: term use and placeholder accuracy per model, as share and counts."""
    lines = []
    for key, label, count, total, share in (
        ("glossary", "term use", "hits", "sentences_with_term", "rate"),
        ("placeholders", "placeholders kept", "correct", "sentences_with_placeholder", "accuracy"),
    ):
        if key not in entry:
            continue
        results = entry[key]
        first = next(iter(results.values()))
        if first[share] is None:
            lines.append(f"{label}: {first['why']}")
            continue
        cells = [f"{model} {result[count]}/{result[total]} ({100 * result[share]:.0f} %)"
                 for model, result in results.items()]
        lines.append(f"{label}: " + ", ".join(cells))
    return [""] + lines if lines else []


def _share_cell(share: float | None) -> str:
    return "n/a" if share is None else f"{100 * share:.0f} %"
