"""``hf-l2mt export``: a fine-tuned model as a CTranslate2 folder, checked against PyTorch before it is kept.

1. PEFT adapters are merged into their base model first (peft is optional: without it only plain
   models are exported, and a folder of adapters is refused with a message that says so).
2. CTranslate2's own Transformers converter converts the model at the asked quantization into a
   temporary folder beside the output; the tokenizer and the generation config are saved with it.
3. Parity: the probe sentences (``--probe``, or the run's held-out sets: ``hf_l2mt.apps.export.probe``) are
   translated with PyTorch and with the export at the settings they will be served with (``--num_beams``,
   ``--max_new_tokens``, the generation config's length penalty and early stopping). The share
   of identical hypotheses and the chrF and BLEU difference are reported; a difference beyond
   ``--parity_tolerance`` fails the export with the numbers, and the temporary folder is removed.
4. A README and ``hf_l2mt_export.json`` (source, quantization, the decoder's positions, the CTranslate2
   decoding options, parity) are written, and the folder is renamed to ``--output_dir``; an existing one is
   replaced only with ``--overwrite``.
"""

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import ClassVar

from .probe import Probe, read_probe

QUANTIZATIONS = (
    "float32", "int8", "int8_float32", "int16", "float16", "bfloat16", "int8_float16", "int8_bfloat16",
)
TARGETS = ("ctranslate2",)
ADAPTER_CONFIG = "adapter_config.json"
README = "README.md"


class ExportError(ValueError):
    """An export that cannot be made as asked: an existing output, an unsupported architecture."""


class ParityError(ValueError):
    """The export translates the probe sentences differently from PyTorch, beyond the tolerance."""


@dataclass
class ExportSettings:
    """What is exported, to where, at which precision, and how closely it must match PyTorch."""

    positional_fields: ClassVar[tuple[str, ...]] = ("model_dir",)

    model_dir: str | None = field(
        default=None, metadata={"help": "output_dir of a finished run, or any folder written by save_pretrained "
                                "(PEFT adapters are merged first)"}
    )
    to: str = field(default="ctranslate2", metadata={"choices": TARGETS, "help": "the inference engine"})
    quantization: str = field(
        default="float32", metadata={"choices": QUANTIZATIONS, "help": "weight type of the export"}
    )
    probe: str | None = field(default=None, metadata={
        "metavar": "SOURCE_FILE[,REFERENCE_FILE]",
        "help": "sentences translated by PyTorch and by the export to check parity (UTF-8, one per line); with "
        "references both are scored against them, without, the export is scored against PyTorch's translations "
        "(default: the run's held-out sets in MODEL_DIR/forgetting_report.json)",
    })
    parity_tolerance: float = field(default=1.0, metadata={
        "help": "largest accepted difference, in chrF and in BLEU points, between the export's and PyTorch's scores",
    })
    output_dir: str | None = field(
        default=None, metadata={"metavar": "PATH", "help": "the export folder (default: MODEL_DIR-ct2-QUANTIZATION)"}
    )
    overwrite: bool = field(default=False, metadata={"help": "replace an existing export folder"})
    num_beams: int = field(default=4, metadata={
        "help": "beam size of the parity check: the one the export will serve with (hf-l2mt translate's default "
        "is 4; 1 is greedy)",
    })
    max_new_tokens: int = field(default=128, metadata={
        "help": "longest translation of the parity check, in tokens (capped at the decoder's positions)",
    })
    source_prefix: str | None = field(default=None, metadata={
        "metavar": "TEXT", "help": "text put before every probe sentence (T5: 'translate English to German: ')",
    })

    def __post_init__(self):
        if self.parity_tolerance < 0:
            raise ValueError(f"--parity_tolerance: got {self.parity_tolerance}; accepted: a number >= 0")
        for flag in ("num_beams", "max_new_tokens"):
            if getattr(self, flag) < 1:
                raise ValueError(f"--{flag}: got {getattr(self, flag)}; accepted: an integer >= 1")

    def export_dir(self) -> str:
        return self.output_dir or f"{os.path.normpath(self.model_dir)}-ct2-{self.quantization}"


def supported_architectures() -> list[str]:
    """The model configurations CTranslate2's Transformers converter has a loader for."""
    from ctranslate2.converters import transformers as converter

    return sorted(converter._MODEL_LOADERS)  # the converter's registry; it has no public accessor


def check_architecture(model_dir: str) -> str:
    """The configuration class of the model in ``model_dir``; an ``ExportError`` lists the supported ones."""
    from transformers import AutoConfig

    name = type(AutoConfig.from_pretrained(model_dir, local_files_only=True)).__name__
    supported = supported_architectures()
    if name not in supported:
        raise ExportError(
            f"{model_dir!r} holds a {name}, which CTranslate2's converter does not support; accepted: "
            f"{', '.join(supported)}"
        )
    return name


def merged_model_dir(model_dir: str, scratch: str) -> str:
    """``model_dir`` itself for a plain model; for PEFT adapters, a folder under ``scratch`` with them merged."""
    if not os.path.isfile(os.path.join(model_dir, ADAPTER_CONFIG)):
        return model_dir
    try:
        from peft import AutoPeftModelForSeq2SeqLM
    except ImportError:
        raise ImportError(
            f"{model_dir!r} holds PEFT adapters ({ADAPTER_CONFIG}) and peft is not installed; without peft only "
            "plain models can be exported: pip install peft"
        ) from None
    from transformers import AutoTokenizer

    from ...tokenizer_warnings import without_sacremoses_recommendation

    model = AutoPeftModelForSeq2SeqLM.from_pretrained(model_dir, local_files_only=True).merge_and_unload()
    merged = os.path.join(scratch, "merged")
    model.save_pretrained(merged)
    with without_sacremoses_recommendation():
        AutoTokenizer.from_pretrained(model_dir, local_files_only=True).save_pretrained(merged)
    return merged


def convert(source_dir: str, target_dir: str, quantization: str) -> None:
    """CTranslate2's converter, with ``EXPORT_LOADERS`` in place of its own for Marian, then the tokenizer and
    generation config the export translates with, and ``hf_l2mt_export.json`` with the decoder's positions,
    which the engine caps ``max_new_tokens`` at without loading transformers' config."""
    from ctranslate2.converters import TransformersConverter
    from transformers import GenerationConfig

    from ...core.generation_length import decoder_positions
    from ...evaluation.translate import load_translation_model
    from ...tokenizer_warnings import without_sacremoses_recommendation
    from .loaders import export_loaders

    with without_sacremoses_recommendation(), export_loaders():
        TransformersConverter(source_dir).convert(target_dir, quantization=quantization, force=True)
    model, tokenizer = load_translation_model(source_dir)
    tokenizer.save_pretrained(target_dir)
    generation = model.generation_config if model.generation_config is not None else GenerationConfig()
    generation.save_pretrained(target_dir)
    write_export_info(target_dir, {"decoder_positions": decoder_positions(model.config)})


def write_export_info(export_dir: str, info: dict) -> None:
    """``info`` added to the export's ``hf_l2mt_export.json``."""
    from ...evaluation.ctranslate2_engine import EXPORT_INFO, read_export_info

    merged = {**read_export_info(export_dir), **info}
    with open(os.path.join(export_dir, EXPORT_INFO), "w", encoding="utf-8") as handle:
        json.dump(merged, handle, indent=2)
        handle.write("\n")


def parity_check(source_dir: str, export_dir: str, settings: ExportSettings, probe: Probe) -> dict:
    """The probe translated by PyTorch and by the export at the serving settings (``--num_beams``,
    ``--max_new_tokens`` within the decoder's positions, the generation config's search settings), compared."""
    from ...core.generation_length import capped_model_new_tokens
    from ...evaluation.ctranslate2_engine import ExportedModel, translate_with_export
    from ...evaluation.ctranslate2_options import decoding_options
    from ...evaluation.metrics import score_translations
    from ...evaluation.translate import load_translation_model, translate

    sources, references = probe.sources, probe.references
    model, tokenizer = load_translation_model(source_dir)
    max_new_tokens = capped_model_new_tokens(model, settings.max_new_tokens)
    generation = {"num_beams": settings.num_beams, "max_new_tokens": max_new_tokens,
                  "source_prefix": settings.source_prefix}
    pytorch = translate(sources, model, tokenizer, device="cpu", progress=False, **generation)
    exported = translate_with_export(sources, ExportedModel(export_dir), **generation)
    scored_against = pytorch if references is None else references
    pytorch_scores = score_translations(pytorch, scored_against)
    export_scores = score_translations(exported, scored_against)
    return {
        "sentences": len(sources),
        "identical": 100.0 * sum(a == b for a, b in zip(pytorch, exported)) / len(sources),
        "probe": probe.description,
        "scored_against": "PyTorch's translations" if references is None else "references",
        "decoding": decoding_options(model.generation_config, settings.num_beams, max_new_tokens),
        **{f"pytorch_{name}": pytorch_scores[name] for name in ("bleu", "chrf")},
        **{f"export_{name}": export_scores[name] for name in ("bleu", "chrf")},
        **{f"{name}_difference": export_scores[name] - pytorch_scores[name] for name in ("bleu", "chrf")},
    }


def parity_table(parity: dict) -> str:
    """The parity numbers as the lines ``hf-l2mt export`` prints and the export's README shows."""
    return "\n".join([
        f"sentences            {parity['sentences']}",
        f"identical hypotheses {parity['identical']:.1f} %",
        f"chrF  PyTorch {parity['pytorch_chrf']:.2f}  export {parity['export_chrf']:.2f}  "
        f"difference {parity['chrf_difference']:+.2f}",
        f"BLEU  PyTorch {parity['pytorch_bleu']:.2f}  export {parity['export_bleu']:.2f}  "
        f"difference {parity['bleu_difference']:+.2f}",
        f"(scored against {parity['scored_against']}; {search_words(parity['decoding'])})",
    ])


def search_words(decoding: dict) -> str:
    """The parity check's search in words: greedy, or the beam size and length penalty."""
    if decoding["beam_size"] == 1:
        return "greedy decoding"
    return f"beam size {decoding['beam_size']}, length penalty {decoding['length_penalty']:g}"


def readme_text(settings: ExportSettings, architecture: str, probe: Probe, parity: dict) -> str:
    name = os.path.basename(settings.export_dir())
    return f"""# {name}

CTranslate2 export of `{os.path.abspath(settings.model_dir)}` ({architecture}), quantization `{settings.quantization}`,
written by `hf-l2mt export`.

## Parity with PyTorch

Probe: {probe.description}.

```
{parity_table(parity)}
```

## Loading it

```
hf-l2mt translate {name} --input sentences.txt
hf-l2mt evaluate {name} --test test=test.src,test.ref
```

In Python, with the tokenizer saved here:

```python
import ctranslate2, transformers
translator = ctranslate2.Translator("{name}", device="cpu")
tokenizer = transformers.AutoTokenizer.from_pretrained("{name}")
tokens = tokenizer.convert_ids_to_tokens(tokenizer.encode("A sentence."))
options = {parity['decoding']!r}  # as PyTorch decodes (hf_l2mt_export.json)
output = translator.translate_batch([tokens], **options)[0].hypotheses[0]
print(tokenizer.decode(tokenizer.convert_tokens_to_ids(output), skip_special_tokens=True))
```
"""


def export_model(settings: ExportSettings) -> dict:
    """Export, check parity, write the README; returns the parity numbers. The output appears only when all passed."""
    try:
        import ctranslate2  # noqa: F401
    except ImportError:
        raise ImportError("hf-l2mt export needs ctranslate2: pip install 'hf_l2mt[export]'") from None
    from ...evaluation.translate import ModelDirectoryError

    model_dir, target = settings.model_dir, settings.export_dir()
    if not any(os.path.isfile(os.path.join(model_dir, name)) for name in ("config.json", ADAPTER_CONFIG)):
        what = "does not exist" if not os.path.exists(model_dir) else "has no config.json nor adapter_config.json"
        raise ModelDirectoryError(f"MODEL_DIR {model_dir!r} {what}; pass a directory written by save_pretrained")
    if os.path.exists(target) and not settings.overwrite:
        raise ExportError(f"--output_dir {target!r} exists; pass --overwrite to replace it, or choose another path")
    probe = read_probe(model_dir, settings.probe)
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=parent, prefix=".hf_l2mt_export-") as scratch:
        source_dir = merged_model_dir(model_dir, scratch)
        architecture = check_architecture(source_dir)
        staged = os.path.join(scratch, "export")
        convert(source_dir, staged, settings.quantization)
        parity = parity_check(source_dir, staged, settings, probe)
        worst = max(abs(parity["chrf_difference"]), abs(parity["bleu_difference"]))
        if worst > settings.parity_tolerance:
            raise ParityError(
                f"the {settings.quantization} export differs from PyTorch by more than --parity_tolerance "
                f"{settings.parity_tolerance} points; nothing was written:\n{parity_table(parity)}"
            )
        write_export_info(staged, {"source": os.path.abspath(model_dir), "architecture": architecture,
                                   "quantization": settings.quantization, "probe": probe.description,
                                   "parity": parity})
        with open(os.path.join(staged, README), "w", encoding="utf-8") as handle:
            handle.write(readme_text(settings, architecture, probe, parity))
        if os.path.exists(target):
            shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
        os.replace(staged, target)
    return parity


def run_export(settings: ExportSettings) -> None:
    parity = export_model(settings)
    print(f"probe: {parity['probe']}")
    print(parity_table(parity))
    print(f"export: {settings.export_dir()}")
