"""A full-batch training loop written from the definitions, for the EWC, KL and L1 tests.

Every term is added the slow, obvious way (in the loss, through autograd, or as a plain tensor
update around ``optimizer.step()``), with a separate frozen copy of the base model for the KL term.
"""

import copy

import torch
import torch.nn.functional as F

from conftest import PAD, PadCollator, params_of

LR = 1e-2
EPS = 1e-4  # as in test_update_equivalence: keeps float round-off from becoming an Adam step


def decays(name: str) -> bool:
    """transformers' default split, restated: no weight decay on biases and norm weights."""
    return "bias" not in name and "norm" not in name


def forward(model, batch):
    labels = batch["labels"]
    return model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
        decoder_input_ids=model.prepare_decoder_input_ids_from_labels(labels=labels),
    ).logits


def kl_per_token(logits, base_logits, labels, temperature=1.0):
    """Mean over non-ignored target tokens of T²·Σ_v p_base(v)·(log p_base(v) − log p_θ(v))."""
    mask = labels.ne(-100)
    p_base = torch.softmax(base_logits[mask] / temperature, dim=-1)
    log_ratio = torch.log_softmax(base_logits[mask] / temperature, dim=-1) - torch.log_softmax(
        logits[mask] / temperature, dim=-1)
    return temperature**2 * (p_base * log_ratio).sum(-1).mean()


def reference_run(model, dataset, steps, make_optimizer, extra_loss=None, before_step=None, after_step=None,
                  pad_id=PAD):
    """``extra_loss(t, logits, batch, named, anchor, base)`` is added to the mean token cross-entropy;
    ``before_step`` / ``after_step(t, named, anchor)`` run under no_grad around ``optimizer.step()``."""
    anchor = {n: p.detach().clone() for n, p in model.named_parameters()}
    base = copy.deepcopy(model).eval().requires_grad_(False)
    batch = PadCollator(pad_id)(list(dataset))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = make_optimizer(named)
    for t in range(steps):
        model.zero_grad()
        logits = forward(model, batch)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch["labels"].reshape(-1), ignore_index=-100)
        if extra_loss is not None:
            loss = loss + extra_loss(t, logits, batch, named, anchor, base)
        loss.backward()
        with torch.no_grad():
            if before_step is not None:
                before_step(t, named, anchor)
            optimizer.step()
            if after_step is not None:
                after_step(t, named, anchor)
    return params_of(model)


def adamw(named):
    return torch.optim.AdamW([p for _, p in named], lr=LR, betas=(0.9, 0.999), eps=EPS, weight_decay=0.0)


def sgd(named):
    return torch.optim.SGD([p for _, p in named], lr=LR)
