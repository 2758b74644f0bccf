"""The sentences ``hf-l2mt export``'s parity check translates: ``--probe`` files, or else the run's held-out sets.

A run keeps its held-out sets in ``forgetting_report.json`` (a recipe run with a general-domain set,
``hf-l2mt evaluate --base``, the demo): per set, ``sentences`` holds the sources and references in the
order of the set. Without ``--probe``, every set there is translated, in the report's order, and scored
against its references. There is no built-in fallback: a model folder without such a report needs ``--probe``.
"""

from dataclasses import dataclass

PROBE_FORMAT = "SOURCE_FILE[,REFERENCE_FILE], sentences of the model's source language, one per line"


@dataclass
class Probe:
    """Sources, their references (``None``: the export is scored against PyTorch's translations), and where they
    came from, in words, for the printout, the README and ``hf_l2mt_export.json``."""

    sources: list[str]
    references: list[str] | None
    description: str


def probe_from_files(probe: str) -> Probe:
    """``--probe SOURCE_FILE[,REFERENCE_FILE]``, checked before anything is converted."""
    from ...evaluation.translate import read_lines  # torch and transformers load once the flags are good

    source_file, _, reference_file = probe.partition(",")
    sources = read_lines(source_file)
    if not sources:
        raise ValueError(
            f"--probe {source_file}: the file has no sentence; accepted: a UTF-8 file with one sentence per line"
        )
    references = read_lines(reference_file) if reference_file else None
    if references is not None and len(references) != len(sources):
        raise ValueError(
            f"--probe: {source_file} has {len(sources)} sentences and {reference_file} has {len(references)}; "
            "accepted: the same number"
        )
    return Probe(sources, references, f"`{probe}`")


def probe_from_run(model_dir: str) -> Probe:
    """Every set of ``model_dir/forgetting_report.json`` with its sentences, in the report's order."""
    from ...evaluation.forgetting import REPORT_FILE, kept_sets

    path, sets = kept_sets(model_dir, f"give --probe {PROBE_FORMAT}")
    if sets is None:
        raise ValueError(
            f"--probe: none given, and {model_dir!r} has no {REPORT_FILE} with the run's held-out sentences (a "
            "recipe run with a general-domain set, hf-l2mt evaluate --base and the demo write one); accepted: "
            f"{PROBE_FORMAT}"
        )
    if not sets:
        raise ValueError(f"{path}: no set keeps its sentences; give --probe {PROBE_FORMAT}")
    kept = {name: entry["sentences"] for name, entry in sets.items()}
    sources = [source for sentences in kept.values() for source in sentences["source"]]
    references = [reference for sentences in kept.values() for reference in sentences["reference"]]
    counts = ", ".join(f"{name} {len(sentences['source'])}" for name, sentences in kept.items())
    return Probe(sources, references, f"the run's held-out sets in `{REPORT_FILE}` ({counts} sentences)")


def read_probe(model_dir: str, probe: str | None) -> Probe:
    """``--probe`` when given, else the held-out sets the run in ``model_dir`` recorded."""
    return probe_from_files(probe) if probe is not None else probe_from_run(model_dir)
