"""The tensors of saved models, read one at a time, and the model folder written from new ones.

``SavedTensors`` reads a ``save_pretrained`` folder's ``model.safetensors`` (or the shards its index lists) with
``safe_open``: a tensor is in memory only while it is used. A LoRA adapter folder (``adapter_config.json``) is
read as its base with the adapter merged in (``MergedAdapter``), which holds that one model in memory.
``check_same_tensors`` refuses models whose tensor names or shapes differ, naming the first difference.
``write_model`` stages the folder (weights, config, generation config, tokenizer, a JSON of where it came from)
beside its target and renames it when complete. Its weights are written one tensor at a time as each is computed
(``write_safetensors``: the header first, from the names, dtypes and shapes, then the bytes), and element-wise
arithmetic runs on chunks of ``CHUNK`` elements (``elementwise``), so that no float64 copy of a whole embedding
matrix is made: the peak is a few tensors of the model, not the model.
"""

import json
import logging
import os
import shutil
import struct
import tempfile

import torch

from ...core.lora import is_adapter_directory

logger = logging.getLogger("hf_l2mt")

WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
CHUNK = 1 << 20  # elements per step of element-wise arithmetic: 8 MiB per float64 temporary
# safetensors' names of the dtypes a model's weights and buffers have.
DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}
DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}


class WeightsError(ValueError):
    """Models that cannot be combined: unreadable weights, other tensor names or shapes, an existing output."""


class SavedTensors:
    """The tensors of the model saved in ``folder``; ``flag`` names the folder in errors (``--base``, ``RUN_DIR``)."""

    def __init__(self, folder: str, flag: str):
        from safetensors import safe_open

        self.folder, self.flag = folder, flag
        if not os.path.isdir(folder):
            raise WeightsError(f"{flag} {folder!r} is not a directory; accepted: a folder written by save_pretrained")
        if os.path.isfile(os.path.join(folder, WEIGHTS_FILE)):
            files = [WEIGHTS_FILE]
        elif os.path.isfile(os.path.join(folder, INDEX_FILE)):
            with open(os.path.join(folder, INDEX_FILE), encoding="utf-8") as handle:
                files = sorted(set(json.load(handle)["weight_map"].values()))
        else:
            raise WeightsError(
                f"{flag} {folder!r} has no {WEIGHTS_FILE} nor {INDEX_FILE}; accepted: a model saved as safetensors "
                "(save_pretrained's default), or a LoRA adapter folder (adapter_config.json)"
            )
        self._handles, self._where = [], {}
        for name in files:
            handle = safe_open(os.path.join(folder, name), framework="pt")
            self._handles.append(handle)
            self._where.update({key: handle for key in handle.keys()})

    def names(self) -> list[str]:
        return sorted(self._where)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._where[name].get_slice(name).get_shape())

    def dtype(self, name: str) -> str:
        return self._where[name].get_slice(name).get_dtype()

    def get(self, name: str) -> torch.Tensor:
        return self._where[name].get_tensor(name)


class MergedAdapter:
    """A LoRA adapter folder read as its base with ``scale``·(s·B·A) merged into each adapted matrix (PEFT's
    ``merge_and_unload``); only the tensors ``names`` (those the base saved: tied weights once) are kept."""

    def __init__(self, folder: str, base: str, names: list[str], flag: str, scale: float = 1.0):
        from ...core.lora import load_adapter_model

        self.folder, self.flag = folder, flag
        model = load_model(base)
        peft_model = load_adapter_model(folder, model)
        if scale != 1.0:
            scale_adapters(peft_model, scale)
        merged = peft_model.merge_and_unload()
        state = merged.state_dict()
        # The merged model's own tensors, not copies: the model itself is let go.
        self._tensors = {name: state[name].detach() for name in names if name in state}

    def names(self) -> list[str]:
        return sorted(self._tensors)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._tensors[name].shape)

    def dtype(self, name: str) -> str:
        return DTYPE_NAMES[self._tensors[name].dtype]

    def get(self, name: str) -> torch.Tensor:
        return self._tensors[name]


def scale_adapters(peft_model, scale: float) -> None:
    """Multiply every LoRA layer's scaling s by ``scale``, so that merging adds ``scale``·s·B·A."""
    from peft.tuners.lora import LoraLayer

    for module in peft_model.modules():
        if isinstance(module, LoraLayer):
            for adapter in module.scaling:
                module.scaling[adapter] *= scale


def load_model(folder: str):
    """The model saved in ``folder``, of the class its config names (a seq2seq model when it names none)."""
    import transformers
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    model_class = getattr(transformers, (config.architectures or ["AutoModelForSeq2SeqLM"])[0])
    return model_class.from_pretrained(folder, local_files_only=True).eval()


def open_model(folder: str, base: SavedTensors, flag: str):
    """The tensors of a fine-tuned model: a saved model's file(s), or an adapter merged into ``base``."""
    if is_adapter_directory(folder):
        from ...core.lora import require_peft

        require_peft(flag, f"{folder!r} (a LoRA adapter)")
        return MergedAdapter(folder, base.folder, base.names(), flag)
    return SavedTensors(folder, flag)


def check_same_tensors(base: SavedTensors, run) -> None:
    """Raise ``WeightsError`` naming the first tensor (in name order) that one model has and the other lacks, or
    whose shapes differ."""
    base_names, run_names = set(base.names()), set(run.names())
    for name in sorted(base_names | run_names):
        if name not in run_names or name not in base_names:
            has, lacks = (base, run) if name not in run_names else (run, base)
            raise WeightsError(
                f"{name!r} is in {has.flag} {has.folder!r} but not in {lacks.flag} {lacks.folder!r}; accepted: "
                "models of one architecture and size, each saved with save_pretrained (tied weights once)"
            )
        if base.shape(name) != run.shape(name):
            raise WeightsError(
                f"{name!r} has shape {run.shape(name)} in {run.flag} {run.folder!r} but {base.shape(name)} in "
                f"{base.flag} {base.folder!r}; accepted: models of one architecture and size"
            )


def buffer_names(folder: str) -> set[str]:
    """The names of the buffers (not parameters) of the model whose config is in ``folder``: the model is built
    on the meta device, which allocates no memory."""
    import transformers
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    with torch.device("meta"):
        if config.architectures:
            model = getattr(transformers, config.architectures[0])(config)
        else:
            model = AutoModelForSeq2SeqLM.from_config(config)
    return {name for name, _ in model.named_buffers()}


def elementwise(function, tensors: list[torch.Tensor]) -> torch.Tensor:
    """``function(*tensors)`` for an element-wise ``function``, computed on ``CHUNK`` elements at a time."""
    flat = [tensor.reshape(-1) for tensor in tensors]
    first = function(*[part[:CHUNK] for part in flat])
    if flat[0].numel() <= CHUNK:
        return first.reshape(tensors[0].shape)
    out = torch.empty(flat[0].numel(), dtype=first.dtype)
    out[:CHUNK] = first
    for start in range(CHUNK, out.numel(), CHUNK):
        out[start:start + CHUNK] = function(*[part[start:start + CHUNK] for part in flat])
    return out.reshape(tensors[0].shape)


def write_safetensors(path: str, layout: list[tuple[str, str, tuple]], produce, metadata: dict) -> None:
    """Write a safetensors file of the tensors ``layout`` lists (name, dtype name, shape), each made by
    ``produce(name)`` only when its bytes are written: the header (8-byte little-endian length, JSON padded with
    spaces to a multiple of 8) holds every offset before any tensor exists."""
    header, begin = {"__metadata__": metadata}, 0
    for name, dtype, shape in layout:
        size = torch.empty((), dtype=DTYPES[dtype]).element_size()
        for dim in shape:
            size *= dim
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [begin, begin + size]}
        begin += size
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(text)))
        handle.write(text)
        for name, dtype, shape in layout:
            tensor = produce(name)
            if tensor.dtype != DTYPES[dtype] or tuple(tensor.shape) != tuple(shape):
                raise RuntimeError(f"write_safetensors: {name} is {tensor.dtype} {tuple(tensor.shape)}, "
                                   f"its header says {dtype} {tuple(shape)}")
            handle.write(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().data)


def check_output(target: str, overwrite: bool, flag: str = "--output_dir") -> None:
    if os.path.exists(target) and not overwrite:
        raise WeightsError(f"{flag} {target!r} exists; pass --overwrite to replace it, or choose another path")


def write_model(target: str, source, produce, config_dir: str, tokenizer_dirs: list[str], provenance: dict,
                provenance_file: str) -> str:
    """Write ``target/model.safetensors`` with the tensors of ``source`` (names, dtypes, shapes: tied weights once),
    each made by ``produce(name)``, and the config and generation config of ``config_dir`` and the tokenizer of the
    first of ``tokenizer_dirs`` that has one; staged beside ``target``, then renamed."""
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    from ...tokenizer_warnings import without_sacremoses_recommendation

    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=parent, prefix=".hf_l2mt_weights-") as scratch:
        staged = os.path.join(scratch, "model")
        os.makedirs(staged)
        layout = [(name, source.dtype(name), source.shape(name)) for name in source.names()]
        write_safetensors(os.path.join(staged, WEIGHTS_FILE), layout, produce, {"format": "pt"})
        AutoConfig.from_pretrained(config_dir, local_files_only=True).save_pretrained(staged)
        generation_dir = next((path for path in (*tokenizer_dirs, config_dir)
                               if os.path.isfile(os.path.join(path, "generation_config.json"))), None)
        if generation_dir is not None:
            GenerationConfig.from_pretrained(generation_dir, local_files_only=True).save_pretrained(staged)
        tokenizer_dir = next(
            (path for path in tokenizer_dirs if os.path.isfile(os.path.join(path, "tokenizer_config.json"))), None
        )
        if tokenizer_dir is None:
            logger.warning("no tokenizer in %s; %s has none", ", ".join(tokenizer_dirs), target)
        else:
            with without_sacremoses_recommendation():
                AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True).save_pretrained(staged)
        with open(os.path.join(staged, provenance_file), "w", encoding="utf-8") as handle:
            json.dump(provenance, handle, indent=2)
            handle.write("\n")
        if os.path.exists(target):
            shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
        os.replace(staged, target)
    return target
