"""LoRA through PEFT: which matrices get adapters, wrapping a model, and reading a saved adapter back.

LoRA (Hu et al. 2022) freezes the pretrained weights W and trains, per adapted matrix, a low-rank update
ΔW = s·B·A with A (r × in), B (out × r) and s = lora_alpha / lora_r; B starts at zero, so the wrapped model
starts as the pretrained one. PEFT (``pip install 'hf-l2mt[lora]'``) does the wrapping and the saving
(``adapter_config.json`` + ``adapter_model.safetensors``, loadable with ``PeftModel.from_pretrained``).
The merged-weight L2-SP penalty on ΔW is in ``hf_l2mt.core.regularizers.lora_l2sp``.
"""

import copy
import importlib.util
import json
import os

from torch import nn

ADAPTER_CONFIG_FILE = "adapter_config.json"
INSTALL_HINT = "pip install 'hf-l2mt[lora]' (peft>=0.13)"

# model_type → the matrices that get adapters when lora_target_modules is not given: every attention
# projection and both feed-forward layers, matched by PEFT as suffixes of module names. PEFT's own table
# (peft/utils/constants.py) adapts only the attention query and value, which leaves most of a translation
# model's capacity to adapt out of reach. T5 v1.0 has `wi`, T5 v1.1 / mT5 the gated `wi_0` and `wi_1`.
_BART_LIKE = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
_T5_LIKE = ["q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo"]
DEFAULT_TARGET_MODULES = {
    "marian": _BART_LIKE,
    "mbart": _BART_LIKE,
    "bart": _BART_LIKE,
    "m2m_100": _BART_LIKE,  # NLLB checkpoints use the M2M100 architecture
    "t5": _T5_LIKE,
    "mt5": _T5_LIKE,
}


class LoraSetupError(ValueError):
    """LoRA settings that do not fit the model, or a LoRA run without PEFT installed."""


def peft_installed() -> bool:
    return importlib.util.find_spec("peft") is not None


def require_peft(flag: str, what: str) -> None:
    """Raise ``LoraSetupError`` naming ``flag`` when PEFT cannot be imported."""
    if not peft_installed():
        raise LoraSetupError(f"{flag}: {what} needs PEFT, which is not installed; {INSTALL_HINT}")


def is_adapter_directory(path: str) -> bool:
    """True when ``path`` holds a PEFT adapter (``adapter_config.json``)."""
    return os.path.isfile(os.path.join(path, ADAPTER_CONFIG_FILE))


def check_adapter_resume(checkpoint: str, adapter: str) -> None:
    """A checkpoint of a LoRA run resumes only as a LoRA run, with PEFT installed."""
    if not is_adapter_directory(checkpoint):
        if adapter == "lora":
            raise LoraSetupError(
                f"resume_from_checkpoint: {checkpoint!r} holds full model weights, not a LoRA adapter "
                f"({ADAPTER_CONFIG_FILE}), but adapter is 'lora'; resume it with adapter='none'"
            )
        return
    require_peft("resume_from_checkpoint", f"{checkpoint!r} (a LoRA adapter)")
    if adapter != "lora":
        raise LoraSetupError(
            f"resume_from_checkpoint: {checkpoint!r} holds a LoRA adapter ({ADAPTER_CONFIG_FILE}) but adapter is "
            f"{adapter!r}; resume it with adapter='lora' and the run's lora_* settings"
        )


def adapter_base_model(path: str) -> str | None:
    """The base model an adapter folder names (``base_model_name_or_path`` of its ``adapter_config.json``)."""
    with open(os.path.join(path, ADAPTER_CONFIG_FILE), encoding="utf-8") as handle:
        return json.load(handle).get("base_model_name_or_path") or None


def _linear_suffixes(model: nn.Module) -> list[str]:
    """The last name component of every ``nn.Linear``, once each, in model order."""
    return list(dict.fromkeys(name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                              if isinstance(module, nn.Linear)))


def target_modules(model: nn.Module, requested: list[str]) -> list[str]:
    """``requested`` if given, else the architecture's defaults; each must match a module of ``model``."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    names = [name for name, _ in model.named_modules()]
    if not requested:
        if model_type not in DEFAULT_TARGET_MODULES:
            raise LoraSetupError(
                f"lora_target_modules: no default for model_type {model_type!r} (defaults exist for "
                f"{', '.join(DEFAULT_TARGET_MODULES)}); name the layers, e.g. --lora_target_modules "
                f"{' '.join(_linear_suffixes(model)[:4])}; the linear layers of {type(model).__name__} are: "
                f"{', '.join(_linear_suffixes(model))}"
            )
        return [t for t in DEFAULT_TARGET_MODULES[model_type] if any(n.rsplit(".", 1)[-1] == t for n in names)]
    unmatched = [t for t in requested if not any(n == t or n.endswith(f".{t}") for n in names)]
    if unmatched:
        raise LoraSetupError(
            f"lora_target_modules: {', '.join(map(repr, unmatched))} match(es) no module of "
            f"{type(model).__name__}; its linear layers are: {', '.join(_linear_suffixes(model))}"
        )
    return list(requested)


def _check_rank(model: nn.Module, targets: list[str], rank: int) -> None:
    """A rank above min(in, out) of an adapted matrix adds parameters and no expressiveness."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and any(name == t or name.endswith(f".{t}") for t in targets):
            smallest = min(module.in_features, module.out_features)
            if rank > smallest:
                raise LoraSetupError(
                    f"lora_r: got {rank}, but {name} is {module.out_features}x{module.in_features}, so B·A has "
                    f"rank at most {smallest}; accepted: an integer from 1 to {smallest} for these target modules"
                )


def wrap_with_lora(model: nn.Module, args) -> nn.Module:
    """``model`` as a ``PeftModel`` with LoRA adapters as ``args`` (``L2MTTrainingArguments``) say.

    Only the adapters and ``lora_modules_to_save`` stay trainable; the base weights are frozen.
    """
    require_peft("adapter", "'lora'")
    from peft import LoraConfig, PeftModel, TaskType, get_peft_model

    if isinstance(model, PeftModel):
        raise LoraSetupError(
            f"adapter: got 'lora' for a model that already has PEFT adapters "
            f"({', '.join(model.peft_config)}); pass the base model, or set adapter='none' to train these"
        )
    targets = target_modules(model, args.lora_target_modules)
    _check_rank(model, targets, args.lora_r)
    config = LoraConfig(
        task_type=TaskType.SEQ_2_SEQ_LM,
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=targets,
        modules_to_save=list(args.lora_modules_to_save) or None,
    )
    try:
        return get_peft_model(model, config)
    except (ValueError, TypeError) as err:
        # PEFT refuses module types it has no LoRA layer for (a LayerNorm, a custom layer) and models
        # whose modules_to_save do not exist; its message names the module.
        raise LoraSetupError(
            f"adapter: PEFT cannot put LoRA on {type(model).__name__} with lora_target_modules={targets} and "
            f"lora_modules_to_save={list(args.lora_modules_to_save)}: {err}; target nn.Linear layers "
            f"({', '.join(_linear_suffixes(model))})"
        ) from None


def load_adapter_model(path: str, base_model: nn.Module):
    """The adapter saved in ``path`` on top of ``base_model`` (a ``PeftModel``, in eval mode)."""
    require_peft("adapter", f"the adapter in {path!r}")
    from peft import PeftModel

    return PeftModel.from_pretrained(base_model, path).eval()


def save_merged(peft_model, directory: str, tokenizer=None) -> str:
    """Write ``W + s·B·A`` as a plain transformers model to ``directory`` (loads with ``AutoModelForSeq2SeqLM``).

    The adapters stay in ``peft_model``: the merge happens on a copy of the weights.
    """
    merged = copy.deepcopy(peft_model).merge_and_unload()
    merged.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory
