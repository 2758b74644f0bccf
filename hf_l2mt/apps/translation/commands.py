"""``hf-l2mt evaluate`` and ``hf-l2mt translate``: their flags, and the runs that call
``hf_l2mt.evaluation.translate``. torch and transformers are imported when a command runs, not when its
flags are parsed or listed."""

import contextlib
import json
import os
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from ..terminal.settings import RepeatableFlag

TEST_SET_SYNTAX = "NAME=SOURCE_FILE,REFERENCE_FILE"
COMPARE_SYNTAX = "NAME=RUN_DIR"
ENGINES = ("auto", "transformers", "ctranslate2")


@dataclass
class GenerationSettings:
    """How ``evaluate`` and ``translate`` generate: the flags they share."""

    batch_size: int = field(
        default=32, metadata={"help": "sentences per batch; sorted by length, the output keeps input order"}
    )
    num_beams: int = field(default=4, metadata={"help": "beam size; 1 is greedy"})
    max_new_tokens: int = field(
        default=128, metadata={"help": "longest translation, in tokens (capped at the decoder's positions)"}
    )
    device: str | None = field(
        default=None, metadata={"help": "where the model runs: cpu, cuda, cuda:N, mps (default: cuda if available)"}
    )
    source_prefix: str | None = field(
        default=None, metadata={
            "metavar": "TEXT",
            "help": "text put before every sentence; T5 models need their task prefix, e.g. 'translate English to German: '",
        },
    )
    engine: str = field(default="auto", metadata={
        "choices": ENGINES,
        "help": "what translates: transformers (PyTorch), or ctranslate2 for a folder written by hf-l2mt export; "
        "auto picks ctranslate2 when MODEL_DIR holds model.bin",
    })
    max_batch_tokens: int = field(
        default=4096, metadata={"help": "ctranslate2 engine: source tokens per batch (it replaces --batch_size)"}
    )
    num_threads: int = field(
        default=0, metadata={"help": "ctranslate2 engine: CPU threads; 0 lets CTranslate2 choose"}
    )

    def __post_init__(self):
        if self.num_threads < 0:
            raise ValueError(f"--num_threads: got {self.num_threads}; accepted: an integer >= 0")
        for flag in ("batch_size", "num_beams", "max_new_tokens", "max_batch_tokens"):
            if getattr(self, flag) < 1:
                raise ValueError(f"--{flag}: got {getattr(self, flag)}; accepted: an integer >= 1")


@dataclass
class EvaluateSettings(GenerationSettings):
    """Which model is scored on which test sets, and where the scores go."""

    positional_fields: ClassVar[tuple[str, ...]] = ("model_dir",)

    model_dir: str | None = field(default=None, metadata={"help": "output_dir of a finished run"})
    test: list[str] = field(default_factory=list, metadata={
        "action": RepeatableFlag, "metavar": TEST_SET_SYNTAX,
        "help": "test sets: UTF-8 text files with one sentence per line; repeat the flag or list several",
    })
    output_json: str | None = field(
        default=None, metadata={"metavar": "PATH", "help": "where the scores go (default: MODEL_DIR/test_scores.json)"}
    )

    # Parameters that control the forgetting report (docs/forgetting_report.md)
    base: str | None = field(
        default=None, metadata={
            "metavar": "BASE_MODEL",
            "help": "the model MODEL_DIR was fine-tuned from (a local directory): with it, evaluate writes the "
            "forgetting report (MODEL_DIR/forgetting_report.json and .png) instead of test_scores.json",
        },
    )
    compare: list[str] = field(default_factory=list, metadata={
        "action": RepeatableFlag, "metavar": COMPARE_SYNTAX,
        "help": "other fine-tunes of BASE_MODEL to report next to MODEL_DIR (e.g. plain=runs/plain, the run "
        "without regularization); needs --base",
    })
    general_sets: list[str] = field(default_factory=lambda: ["general"], metadata={
        "action": RepeatableFlag, "metavar": "NAME",
        "help": "test sets that are held-out general domain (forgetting shows there); the others are in-domain",
    })
    bootstrap_seed: int = field(default=12345, metadata={"help": "seed of the paired bootstrap (sacreBLEU's default)"})
    bootstrap_resamples: int = field(default=1000, metadata={"help": "resamples of the paired bootstrap"})
    glossary: str | None = field(
        default=None, metadata={
            "metavar": "FILE",
            "help": "term pairs (.tsv or .csv: source term, target term; or .tbx): the report adds how often each "
            "model uses the required target term; needs --base",
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if not self.test:
            raise ValueError(f"--test: none given; accepted: one or more {TEST_SET_SYNTAX}")
        names = [parse_test_set(text)[0] for text in self.test]
        if len(set(names)) < len(names):
            raise ValueError(f"--test: two test sets have the same NAME ({', '.join(names)})")
        if self.compare and self.base is None:
            raise ValueError(f"--compare {' '.join(self.compare)}: needs --base BASE_MODEL, the model the runs start from")
        compared = [parse_compare(text)[0] for text in self.compare]
        if len(set(compared)) < len(compared) or {"base", "run"} & set(compared):
            raise ValueError(
                f"--compare: names {', '.join(compared)}; accepted: distinct names other than 'base' and 'run'"
            )
        if self.glossary is not None and self.base is None:
            raise ValueError(f"--glossary {self.glossary}: needs --base BASE_MODEL (term use is part of the report)")
        if self.base is not None:
            unknown = [name for name in self.general_sets if name not in names]
            if unknown and self.general_sets != ["general"]:
                raise ValueError(
                    f"--general_sets: {', '.join(unknown)} is not a --test set; the test sets are {', '.join(names)}"
                )
            from ...evaluation.significance import check_bootstrap_settings

            check_bootstrap_settings(self.bootstrap_seed, self.bootstrap_resamples)

    def test_sets(self) -> dict[str, tuple[str, str]]:
        return dict(parse_test_set(text) for text in self.test)

    def compared_runs(self) -> dict[str, str]:
        return dict(parse_compare(text) for text in self.compare)


@dataclass
class TranslateSettings(GenerationSettings):
    """Which model translates what."""

    positional_fields: ClassVar[tuple[str, ...]] = ("model_dir",)

    model_dir: str | None = field(default=None, metadata={"help": "output_dir of a finished run"})
    input: str | None = field(
        default=None, metadata={"metavar": "FILE", "help": "UTF-8 text file, one sentence per line (default: stdin)"}
    )


def parse_test_set(text: str) -> tuple[str, tuple[str, str]]:
    """``NAME=SOURCE_FILE,REFERENCE_FILE`` → ``(name, (source_file, reference_file))``."""
    name, _, files = text.partition("=")
    source, _, reference = files.partition(",")
    if not (name and source and reference):
        raise ValueError(f"--test: {text!r} is not {TEST_SET_SYNTAX} (example: newstest2016=test.en,test.de)")
    return name, (source, reference)


def parse_compare(text: str) -> tuple[str, str]:
    """``NAME=RUN_DIR`` → ``(name, run_dir)``."""
    name, _, run_dir = text.partition("=")
    if not (name and run_dir):
        raise ValueError(f"--compare: {text!r} is not {COMPARE_SYNTAX} (example: plain=runs/plain)")
    return name, run_dir


def run_evaluate(settings: EvaluateSettings) -> None:
    from ...evaluation.translate import evaluate_files, report_scores

    if settings.base is not None:
        if chosen_engine(settings) == "ctranslate2":
            raise ValueError(
                f"--base: the forgetting report translates every model with PyTorch, and {settings.model_dir!r} is "
                "read with CTranslate2; accepted: the folder of the model it was exported from (with --engine auto "
                "or transformers)"
            )
        run_forgetting_report(settings)
        return
    warn_if_prefix_missing(settings.model_dir, settings.source_prefix)
    if chosen_engine(settings) == "ctranslate2":
        scores = evaluate_with_export(settings, export_device(settings.device))
    else:
        device = default_device(settings.device)
        with without_weight_loading_bar():
            scores = evaluate_files(
                settings.model_dir, settings.test_sets(), batch_size=settings.batch_size,
                num_beams=settings.num_beams, max_new_tokens=settings.max_new_tokens,
                source_prefix=settings.source_prefix, device=device,
            )
    json_path = settings.output_json or os.path.join(settings.model_dir, "test_scores.json")
    print(report_scores(scores, json_path=json_path))
    print(f"scores with sacreBLEU signatures: {json_path}", file=sys.stderr)


def run_forgetting_report(settings: EvaluateSettings) -> None:
    """Translate every --test set with the base, MODEL_DIR and each --compare run (cached), then print the
    forgetting report and write its JSON and PNG into MODEL_DIR."""
    from ...core.lora import is_adapter_directory
    from ...evaluation.forgetting import BASE, RUN, build_report
    from ...evaluation.translation_cache import cached_translations
    from ..report.files import log_report, write_report_files

    device = default_device(settings.device)
    models = {BASE: settings.base, RUN: settings.model_dir, **settings.compared_runs()}
    for name, model_dir in models.items():
        if not os.path.isfile(os.path.join(model_dir, "config.json")) and not is_adapter_directory(model_dir):
            flag = {BASE: "--base", RUN: "MODEL_DIR"}.get(name, f"--compare {name}")
            what = "does not exist" if not os.path.exists(model_dir) else "has no config.json"
            raise ValueError(f"{flag} {model_dir}: {what}; accepted: a directory written by save_pretrained")
    sources, references = read_test_pairs(settings.test_sets())
    glossary = None
    if settings.glossary is not None:
        from ...evaluation.glossary import languages_of_test_files, read_glossary

        glossary = read_glossary(settings.glossary, *languages_of_test_files(settings.test_sets()))
    translations = {}
    for name, model_dir in models.items():
        warn_if_prefix_missing(model_dir, settings.source_prefix)
        with without_weight_loading_bar():
            translations[name], origin = cached_translations(
                model_dir, sources, batch_size=settings.batch_size, num_beams=settings.num_beams,
                max_new_tokens=settings.max_new_tokens, source_prefix=settings.source_prefix, device=device,
            )
        cached = [set_name for set_name, where in origin.items() if where == "cache"]
        if cached:
            print(f"{name}: translations of {', '.join(cached)} read from the cache", file=sys.stderr)
    report = build_report(
        references, translations, [name for name in settings.general_sets if name in references], models=models,
        seed=settings.bootstrap_seed, resamples=settings.bootstrap_resamples, command=evaluate_command(settings),
        sources=sources, glossary=glossary,
    )
    print(log_report(report, write_report_files(report, settings.model_dir)))


def evaluate_command(settings: EvaluateSettings) -> str:
    """The ``hf-l2mt evaluate`` command line that reproduces this report, for its JSON."""
    words = ["hf-l2mt", "evaluate", settings.model_dir, "--base", settings.base]
    for flag in ("test", "compare", "general_sets"):
        for value in getattr(settings, flag):
            words += [f"--{flag}", value]
    for flag in ("bootstrap_seed", "bootstrap_resamples", "batch_size", "num_beams", "max_new_tokens"):
        words += [f"--{flag}", str(getattr(settings, flag))]
    if settings.source_prefix is not None:
        words += ["--source_prefix", settings.source_prefix]
    if settings.glossary is not None:
        words += ["--glossary", settings.glossary]
    return shlex.join(words)


def read_test_pairs(test_sets: dict[str, tuple[str, str]]) -> tuple[dict, dict]:
    """``({set: sources}, {set: references})`` read from the files; a set whose files differ in length is an
    error naming both files and both counts."""
    from ...evaluation.text_lines import read_lines

    sources, references = {}, {}
    for name, (source_file, reference_file) in test_sets.items():
        for path in (source_file, reference_file):
            if not os.path.isfile(path):
                raise ValueError(f"--test {name}: {path}: no such file")
        sources[name], references[name] = read_lines(source_file), read_lines(reference_file)
        if len(sources[name]) != len(references[name]) or not sources[name]:
            raise ValueError(
                f"--test {name}: {source_file} has {len(sources[name])} lines and {reference_file} has "
                f"{len(references[name])}; accepted: the same number, at least one"
            )
    return sources, references


def run_translate(settings: TranslateSettings) -> None:
    """Translate --input or standard input; with an export, neither torch nor transformers is imported."""
    from ...evaluation.text_lines import decode_lines, read_lines

    engine = chosen_engine(settings)
    device = export_device(settings.device) if engine == "ctranslate2" else default_device(settings.device)
    warn_if_prefix_missing(settings.model_dir, settings.source_prefix)
    if settings.input:
        sentences = read_lines(settings.input)
    else:
        sentences = decode_lines(sys.stdin.buffer.read(), "<stdin>")
    if engine == "ctranslate2":
        translations = translate_with_export_settings(settings, sentences, device)
    else:
        from ...evaluation.translate import load_translation_model, translate

        with without_weight_loading_bar():
            model, tokenizer = load_translation_model(settings.model_dir)
        translations = translate(
            sentences, model, tokenizer, batch_size=settings.batch_size, num_beams=settings.num_beams,
            max_new_tokens=settings.max_new_tokens, source_prefix=settings.source_prefix, device=device,
        )
    # One line per input sentence, so that line i of the output translates line i of the input.
    sys.stdout.writelines(" ".join(text.splitlines()) + "\n" for text in translations)


def chosen_engine(settings: GenerationSettings) -> str:
    """``--engine``, with ``auto`` resolved: ctranslate2 for an export folder, else transformers."""
    from ...evaluation.ctranslate2_engine import EXPORT_WEIGHTS, is_ctranslate2_export

    is_export = is_ctranslate2_export(settings.model_dir)
    if settings.engine == "auto":
        return "ctranslate2" if is_export else "transformers"
    if settings.engine == "transformers" and is_export:
        raise ValueError(
            f"--engine transformers: {settings.model_dir!r} is a CTranslate2 export ({EXPORT_WEIGHTS}); accepted: "
            "--engine ctranslate2 or auto, or the folder of the model it was exported from"
        )
    return settings.engine


def export_device(device: str | None) -> str:
    """``--device`` for the ctranslate2 engine, checked with CTranslate2 (torch is not imported): ``cpu``,
    ``cuda`` or ``cuda:N``; by default CUDA when CTranslate2 sees a GPU, else the CPU."""
    import ctranslate2

    if device is None:
        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    kind, colon, index = device.partition(":")
    if kind not in ("cpu", "cuda") or (colon and (kind == "cpu" or not index.isdigit())):
        raise ValueError(f"--device {device!r}: the ctranslate2 engine runs on cpu, cuda or cuda:N")
    if kind == "cuda" and ctranslate2.get_cuda_device_count() == 0:
        raise ValueError(f"--device {device!r}: this machine has no CUDA GPU that CTranslate2 can use; pass --device cpu")
    return device


@contextlib.contextmanager
def without_weight_loading_bar() -> Iterator[None]:
    """No "Loading weights 0/86 ... 86/86" bar while a local model loads (transformers 5 draws one per load,
    three per export): it lasts milliseconds and leaves a line of debris in a terminal or a log."""
    from transformers.utils import logging as transformers_logging

    shown = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            transformers_logging.enable_progress_bar()


def translate_with_export_settings(settings: GenerationSettings, sentences: list[str], device) -> list[str]:
    from ...evaluation.ctranslate2_engine import ExportedModel, translate_with_export

    model = ExportedModel(settings.model_dir, device=device, num_threads=settings.num_threads)
    return translate_with_export(
        sentences, model, max_batch_tokens=settings.max_batch_tokens, num_beams=settings.num_beams,
        max_new_tokens=settings.max_new_tokens, source_prefix=settings.source_prefix,
    )


def evaluate_with_export(settings: EvaluateSettings, device) -> dict[str, dict]:
    from ...evaluation.ctranslate2_engine import evaluate_export_files

    return evaluate_export_files(
        settings.model_dir, settings.test_sets(), device=device, num_threads=settings.num_threads,
        max_batch_tokens=settings.max_batch_tokens, num_beams=settings.num_beams,
        max_new_tokens=settings.max_new_tokens, source_prefix=settings.source_prefix,
    )


def default_device(device: str | None):
    """``--device`` checked, as a ``torch.device``; CUDA when there is a GPU, else the CPU."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise ValueError(f"--device {device!r}: accepted: cpu, cuda, cuda:N (a GPU index), mps") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device!r}: this machine has no CUDA GPU that torch can use; pass --device cpu")
    return chosen


def warn_if_prefix_missing(model_dir: str, source_prefix: str | None) -> None:
    """T5 translates only with its task prefix, and a saved model does not record it."""
    config_path = os.path.join(model_dir, "config.json")
    if source_prefix is None and os.path.isfile(config_path):
        with open(config_path, encoding="utf-8") as handle:
            if json.load(handle).get("model_type") == "t5":
                print(
                    "hf-l2mt: warning: T5 model without --source_prefix; pass the prefix it was fine-tuned with, "
                    "e.g. --source_prefix 'translate English to German: '", file=sys.stderr,
                )
