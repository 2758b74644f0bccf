"""The diagonal empirical Fisher of a model on general-domain data, for EWC.

EWC (Kirkpatrick et al. 2017; Thompson et al. 2019 for NMT) weights the L2-SP penalty per
coordinate by how much the general-domain likelihood depends on it:  (λ/2)·Σ F ⊙ (θ − θ₀)².

``estimate_fisher`` computes the empirical Fisher **per batch**: for each batch b,
g_b = ∇ (mean over the batch's target tokens of −log p(y_i | x, y_<i)) at the base weights, and

    F = (1/B) · Σ_b g_b ⊙ g_b

(one backward pass per batch, not per sentence: B backward passes for the whole set). A
per-batch square estimates the per-sentence one up to a factor that depends on the batch size;
the trainer divides F by its mean by default (``l2sp_fisher_normalize="mean"``), which removes
that factor and keeps λ on the scale of plain L2-SP.

The Fisher is stored as safetensors keyed by parameter name, with the model and the number of
examples in the metadata.
"""

import os

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..atomic_write import atomic_path
from .loss import token_cross_entropy, uses_token_level_loss

FISHER_FILE = "l2sp_fisher.safetensors"
# How F is scaled before it weights the penalty (``l2sp_fisher_normalize``).
FISHER_NORMALIZATIONS = ("mean", "none")


class FisherError(ValueError):
    """A Fisher file that is missing, unreadable or does not fit the model."""


def estimate_fisher(model: torch.nn.Module, dataloader, max_batches: int | None = None) -> dict[str, torch.Tensor]:
    """Mean over batches of the squared gradient of the batch's token-level negative log-likelihood.

    Every parameter that requires a gradient gets an entry (float32, on the model's device); the
    model runs in eval mode (no dropout) and its weights are not changed. Batches are dicts with
    ``input_ids``, ``attention_mask`` and ``labels`` (padding -100), as ``make_data_collator`` (or, for a causal
    LM, ``CausalLMCollator``) makes them.
    """
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    fisher = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in named.items()}
    if not named:
        raise FisherError(f"estimate_fisher: {type(model).__name__} has no parameter that requires a gradient")
    device = next(iter(named.values())).device
    was_training = model.training
    model.eval()
    batches = 0
    try:
        for batch in dataloader:
            if max_batches is not None and batches >= max_batches:
                break
            batch = {k: v.to(device) for k, v in batch.items() if k != "length"}
            model.zero_grad(set_to_none=True)
            _batch_loss(model, batch).backward()
            for name, param in named.items():
                if param.grad is not None:
                    fisher[name].add_(param.grad.detach().float().pow(2))
            batches += 1
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    if batches == 0:
        raise FisherError("estimate_fisher: the dataloader gave no batch; pass at least one example")
    return {n: f.div_(batches) for n, f in fisher.items()}


def _batch_loss(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """The batch's mean token-level loss as training sees it: the token-level cross-entropy for an
    encoder–decoder, the model's own (shifted) loss for a causal LM."""
    if not uses_token_level_loss(model):
        outputs = model(**batch)
        return outputs["loss"] if isinstance(outputs, dict) else outputs[0]
    labels = batch.pop("labels")
    if "decoder_input_ids" not in batch:
        batch["decoder_input_ids"] = model.prepare_decoder_input_ids_from_labels(labels=labels)
    outputs = model(**batch)
    return token_cross_entropy(outputs["logits"] if isinstance(outputs, dict) else outputs[0], labels)


def save_fisher(fisher: dict[str, torch.Tensor], path: str, metadata: dict[str, str] | None = None) -> str:
    """Write ``fisher`` to ``path`` atomically (temporary file, then rename); metadata values are strings."""
    tensors = {n: t.detach().contiguous().cpu() for n, t in fisher.items()}
    with atomic_path(path) as tmp:  # per process: several may write the same Fisher at once
        save_file(tensors, tmp, metadata={"format": "pt", **{k: str(v) for k, v in (metadata or {}).items()}})
    return path


def read_fisher(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a Fisher file."""
    if not os.path.isfile(path):
        raise FisherError(
            f"l2sp_fisher_path: {path!r} does not exist; create it with "
            "hf-l2mt fisher --model_name_or_path BASE --source_file ... --target_file ... --output FILE"
        )
    try:
        with safe_open(path, framework="pt") as handle:
            return {n: handle.get_tensor(n) for n in handle.keys()}, dict(handle.metadata() or {})
    except Exception as err:  # safetensors raises several types for a damaged file
        raise FisherError(f"{path}: cannot read the Fisher ({err}); the file is damaged or not safetensors") from None


def fisher_weights(
    path: str,
    named_params: dict[str, torch.nn.Parameter],
    model_names: set[str],
    normalize: str = "mean",
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """The per-coordinate L2-SP weights F for ``named_params``, read from ``path`` and checked.

    Every regularized parameter needs an entry of its shape; an entry for a name the model does not
    have means the file was estimated on another model. ``normalize="mean"`` divides F by its mean
    over the regularized coordinates, so that F ≡ const gives plain L2-SP with the same λ.
    """
    if normalize not in FISHER_NORMALIZATIONS:
        raise FisherError(
            f"l2sp_fisher_normalize: got {normalize!r}; accepted: {', '.join(map(repr, FISHER_NORMALIZATIONS))}"
        )
    stored, _ = read_fisher(path)
    unknown = sorted(set(stored) - model_names)
    if unknown:
        raise FisherError(
            f"{path}: {len(unknown)} Fisher entries name no parameter of the model, e.g. {unknown[0]!r}; the Fisher "
            "was estimated on another model"
        )
    missing = [n for n in named_params if n not in stored]
    if missing:
        raise FisherError(
            f"{path}: no Fisher for {len(missing)} regularized parameter(s), e.g. {missing[0]!r}; estimate it on "
            "this model with every parameter trainable"
        )
    weights = {}
    for name, param in named_params.items():
        tensor = stored[name].float()
        if tensor.shape != param.shape:
            raise FisherError(
                f"{path}: Fisher of {name!r} has shape {tuple(tensor.shape)} but the parameter has "
                f"{tuple(param.shape)}; the Fisher was estimated on another model"
            )
        if not torch.isfinite(tensor).all() or (tensor < 0).any():
            raise FisherError(f"{path}: Fisher of {name!r} has negative or non-finite values; accepted: finite, >= 0")
        weights[name] = tensor
    if normalize == "mean" and weights:
        mean = sum(float(w.sum()) for w in weights.values()) / sum(w.numel() for w in weights.values())
        if mean == 0.0:
            raise FisherError(f"{path}: the Fisher is zero on every regularized parameter; it cannot be normalised")
        weights = {n: w / mean for n, w in weights.items()}
    return {n: w.to(device=named_params[n].device, dtype=dtype) for n, w in weights.items()}


def load_checkpoint_weights(
    directory: str, named_params: dict[str, torch.nn.Parameter], model_names: set[str], dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """The weights F a run used, as saved in its checkpoint (already normalised), for an exact resume."""
    path = os.path.join(directory, FISHER_FILE)
    if not os.path.isfile(path):
        raise FisherError(
            f"resume_from_checkpoint: {directory!r} has no {FISHER_FILE}, so the EWC weights of the run cannot be "
            "restored; resume from a checkpoint written with l2sp_fisher_path set, or start a new run"
        )
    return fisher_weights(path, named_params, model_names, normalize="none", dtype=dtype)
