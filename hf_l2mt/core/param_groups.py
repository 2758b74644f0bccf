"""Which parameter gets which weight decay and which L2-SP strength.

Rules, in order:
1. Frozen parameters (``requires_grad=False``) are never touched; sinusoidal position tables,
   which are fixed by design, are frozen first (see ``freeze_fixed_positions``).
2. Weight decay as in transformers: every weight but biases and norm weights (T5's ``layer_norm``
   included); embeddings too unless ``decay_embeddings=False``. ``weight_decay_overrides`` then give
   matching decayed weights their own strength.
3. L2-SP on every trainable parameter (or those matching ``l2sp_include_regex``; the others' groups are
   named ``...[no l2sp]``), biases, norms and embeddings included: pulling them toward their pretrained
   values is harmless, unlike pulling them to zero. ``l2sp_overrides`` give matching parameters their own
   strength.
A weight shared by several modules (tied embeddings and ``lm_head``) is one parameter, counted once.

Order: ``decay`` then ``no_decay``, both always present (transformers' ``create_optimizer`` layout),
then any group the overrides or ``l2sp_include_regex`` split off, in the order of its first parameter.
"""

import re
from dataclasses import dataclass, field

from torch import nn

from .training_args import L2MTTrainingArguments, parse_overrides


@dataclass
class ParamGroup:
    """One optimizer parameter group and its regularization strengths (before schedules)."""

    name: str
    weight_decay: float
    l2sp_lambda: float
    names: list[str] = field(default_factory=list)
    params: list[nn.Parameter] = field(default_factory=list)

    @property
    def numel(self) -> int:
        return sum(p.numel() for p in self.params)

    @property
    def decays(self) -> bool:
        """True for the groups transformers' split gives weight decay (``decay``, ``decay[...]``)."""
        return self.name.split("[")[0] == "decay"


def freeze_fixed_positions(model: nn.Module) -> list[str]:
    """Freeze sinusoidal position tables and return their parameter names.

    ``MarianMTModel.from_pretrained`` leaves ``embed_positions.weight`` trainable while a model built
    from a config has it frozen (transformers 5.24). The table is fixed by design and is not written
    to checkpoints, so training it would silently diverge a resumed run from an uninterrupted one.
    """
    frozen = []
    for module_name, module in model.named_modules():
        if type(module).__name__.endswith("SinusoidalPositionalEmbedding"):
            for param_name, param in module.named_parameters(recurse=False):
                if param.requires_grad:
                    param.requires_grad_(False)
                    frozen.append(f"{module_name}.{param_name}")
    return frozen


def _embedding_parameter_ids(model: nn.Module) -> set[int]:
    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}


def _first_match(name: str, overrides: list[tuple[re.Pattern, float]]) -> tuple[re.Pattern, float] | None:
    return next(((pattern, value) for pattern, value in overrides if pattern.search(name)), None)


def build_param_groups(
    model: nn.Module, args: L2MTTrainingArguments, decay_parameter_names: list[str]
) -> list[ParamGroup]:
    """Split the trainable parameters of ``model`` into groups of equal (weight decay, L2-SP λ)."""
    decay_names = set(decay_parameter_names)
    embedding_ids = _embedding_parameter_ids(model)
    wd_overrides = parse_overrides("weight_decay_overrides", args.weight_decay_overrides)
    l2sp_overrides = parse_overrides("l2sp_overrides", args.l2sp_overrides)
    include = re.compile(args.l2sp_include_regex) if args.l2sp_include_regex is not None else None
    used_patterns: set[str] = set()

    # transformers' two groups come first and always exist, empty or not, so that without overrides or
    # l2sp_include_regex the optimizer (and its optimizer.pt) has transformers' layout; the groups the
    # overrides and l2sp_include_regex split off follow, in the order of their first parameter.
    groups: dict[tuple, ParamGroup] = {
        (label, weight_decay, args.l2sp_lambda): ParamGroup(label, weight_decay, args.l2sp_lambda)
        for label, weight_decay in (("decay", args.weight_decay), ("no_decay", 0.0))
    }
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    for name, param in trainable:
        decays = name in decay_names and (args.decay_embeddings or id(param) not in embedding_ids)
        label = "decay" if decays else "no_decay"
        weight_decay = args.weight_decay if decays else 0.0
        if decays and (match := _first_match(name, wd_overrides)):
            used_patterns.add(("weight_decay_overrides", match[0].pattern))
            weight_decay = match[1]
            label += f"[weight_decay {match[0].pattern}]"

        included = include is None or include.search(name)
        l2sp_lambda = args.l2sp_lambda if included else 0.0
        if match := _first_match(name, l2sp_overrides):
            used_patterns.add(("l2sp_overrides", match[0].pattern))
            l2sp_lambda = match[1]
            label += f"[l2sp {match[0].pattern}]"
        elif not included:
            label += "[no l2sp]"  # so that each group has its own name, in the table and in the logs

        group = groups.setdefault((label, weight_decay, l2sp_lambda), ParamGroup(label, weight_decay, l2sp_lambda))
        group.names.append(name)
        group.params.append(param)

    _check_every_regex_matched(model, trainable, wd_overrides, l2sp_overrides, include, used_patterns)
    return list(groups.values())


def _check_every_regex_matched(model, trainable, wd_overrides, l2sp_overrides, include, used_patterns) -> None:
    example = ", ".join(n for n, _ in trainable[:3])
    for flag, overrides in (("weight_decay_overrides", wd_overrides), ("l2sp_overrides", l2sp_overrides)):
        for pattern, _ in overrides:
            if (flag, pattern.pattern) not in used_patterns:
                eligible = " decayed (not bias/norm)" if flag == "weight_decay_overrides" else ""
                raise ValueError(
                    f"{flag}: regex {pattern.pattern!r} matches no trainable{eligible} parameter of "
                    f"{type(model).__name__}; names look like: {example}"
                )
    if include is not None and not any(include.search(n) for n, _ in trainable):
        raise ValueError(
            f"l2sp_include_regex: regex {include.pattern!r} matches no trainable parameter of "
            f"{type(model).__name__}; names look like: {example}"
        )


def group_layout(groups: list[ParamGroup]) -> tuple:
    """What the group table shows but the strengths: each group's name, tensor count and parameter count."""
    return tuple((g.name, len(g.params), g.numel) for g in groups)


def format_group_table(groups: list[ParamGroup]) -> str:
    """A fixed-width table: group, tensors, parameters, weight decay, L2-SP λ."""
    header = ("group", "tensors", "parameters", "weight_decay", "l2sp_lambda")
    rows = [(g.name, str(len(g.params)), f"{g.numel:,}", f"{g.weight_decay:g}", f"{g.l2sp_lambda:g}") for g in groups]
    total = ("total", str(sum(len(g.params) for g in groups)), f"{sum(g.numel for g in groups):,}", "", "")
    widths = [max(len(r[i]) for r in [header, *rows, total]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*header), *(fmt.format(*r) for r in rows), fmt.format(*total)]
    return "\n".join(lines)


__all__ = [
    "ParamGroup",
    "build_param_groups",
    "format_group_table",
    "freeze_fixed_positions",
    "group_layout",
]
