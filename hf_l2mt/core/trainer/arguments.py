"""What ``L2MTTrainer`` does to its arguments before ``Trainer.__init__`` sees them: default arguments, the seed
and LoRA adapters."""

import logging

from transformers.trainer_utils import enable_full_determinism, set_seed

from ..lora import wrap_with_lora
from ..training_args import L2MTTrainingArguments

logger = logging.getLogger("hf_l2mt")


def seed_as_trainer(args) -> None:
    """Seed Python, NumPy and torch from ``args.seed`` as ``Trainer.__init__`` does, for weights made before it."""
    enable_full_determinism(args.seed) if args.full_determinism else set_seed(args.seed)


def with_default_arguments(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """``Trainer``'s arguments with ``args`` filled in when none are given, as ``Trainer`` fills them
    (``output_dir="tmp_trainer"``, transformers 5.25), but as ``L2MTTrainingArguments``: ``Seq2SeqTrainer.__init__``
    reads ``args.generation_config``, which a plain ``TrainingArguments`` lacks."""
    if (args[1] if len(args) > 1 else kwargs.get("args")) is not None:
        return args, kwargs
    logger.info("No training arguments passed, using L2MTTrainingArguments(output_dir='tmp_trainer')")
    default = L2MTTrainingArguments(output_dir="tmp_trainer")
    if len(args) > 1:
        return (args[0], default, *args[2:]), kwargs
    return args, {**kwargs, "args": default}


def with_lora_adapters(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """``Trainer``'s arguments with the model wrapped in LoRA adapters when ``adapter='lora'``.

    Wrapped before ``Trainer.__init__`` so that it sees a ``PeftModel`` from the start: it then saves and
    resumes adapters (``adapter_model.safetensors``) and builds its optimizer over their parameters only. Seeded
    first, as ``Trainer.__init__`` seeds next, so that the adapters' random A matrices come from ``args.seed``."""
    args, kwargs = list(args), dict(kwargs)
    model = args[0] if args else kwargs.get("model")
    training_args = args[1] if len(args) > 1 else kwargs.get("args")
    if getattr(training_args, "adapter", "none") == "lora" and model is not None:
        seed_as_trainer(training_args)
        model = wrap_with_lora(model, training_args)
        if args:
            args[0] = model
        else:
            kwargs["model"] = model
    return tuple(args), kwargs

